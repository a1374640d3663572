"""The package's version, in a module of its own so that every layer can stamp its records with it."""

__version__ = "0.1.0"
