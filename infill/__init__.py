"""infill: local diffusion-based code infilling."""

__version__ = "0.1.0"
