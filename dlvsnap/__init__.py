"""dlvsnap: see what a Go map does in memory when you delete from it."""

__version__ = "0.1.0"
