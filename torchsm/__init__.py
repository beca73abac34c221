"""torchsm: safe continuous operation for AI coding agents ("Novas")."""

__version__ = "0.1.0"
