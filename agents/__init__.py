"""Agents built on reflect's spiking networks (installed as ``reflect.agents``)."""
