"""microexp: facial micro-expression recognition in JAX."""

__version__ = "0.1.0"
