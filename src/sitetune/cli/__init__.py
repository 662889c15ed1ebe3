"""The ``sitetune`` command line: a thin Typer layer that parses flags and calls stage functions."""
