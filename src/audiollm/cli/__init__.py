"""`audiollm` command line: argument parsing and thin handlers over the Python API."""

from audiollm.cli.parser import main

__all__ = ["main"]
