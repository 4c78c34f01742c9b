"""The ``ctbench`` command line: one module per command, each with its parser beside its handler."""
from benchmark.cli.main import main

__all__ = ["main"]
