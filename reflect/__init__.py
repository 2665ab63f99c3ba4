"""reflect: reinforcement learning with spiking networks that learn online, in one lifetime."""

__version__ = "0.1.0"
