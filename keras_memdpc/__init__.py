"""Memory-augmented Dense Predictive Coding (MemDPC) in Keras 3."""

__version__ = "0.1.0"
