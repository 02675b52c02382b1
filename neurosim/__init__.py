"""neurosim: what a spike coding scheme really costs on neuromorphic hardware."""

__version__ = "0.1.0"
