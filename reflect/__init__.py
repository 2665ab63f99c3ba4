"""reflect: reinforcement learning with spiking networks that learn online, in one lifetime."""

__version__ = "0.2.0"
