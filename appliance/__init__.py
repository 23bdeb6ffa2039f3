"""Nube: a private cloud in one process."""

__version__ = "0.1.0"
