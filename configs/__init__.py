"""Tuned hyperparameters, as YAML keyed by Gymnasium env id (installed as ``reflect.configs``)."""
