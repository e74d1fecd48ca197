"""Glas: harvest residents' complaints into an inbox of cases."""

__version__ = "0.1.0"
