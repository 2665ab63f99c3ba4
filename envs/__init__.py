"""Gymnasium environment helpers (installed as ``reflect.envs``)."""
