"""valyent: the command line for Valyent Cloud."""

__version__ = "0.1.0"
