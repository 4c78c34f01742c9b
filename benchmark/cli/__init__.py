"""The ``ctbench`` command line (``benchmark.cli.main``): one module per command, each with its parser
beside its handler."""
