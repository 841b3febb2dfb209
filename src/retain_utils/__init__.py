"""Code behind the book *Retaining by Doing*: every figure and table in it is computed by this package."""

__version__ = "0.10.1"
