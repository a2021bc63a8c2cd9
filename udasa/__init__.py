"""UDASA: Uncertainty-Driven Adaptive Self-Alignment."""

__version__ = "0.1.0"
