"""The ``melpipe`` command of the Python package: the same command as the cargo-built binary."""

import sys


def main() -> None:
    """Runs ``melpipe`` with this process's arguments and exits with its code."""
    from ._native import cli_main

    sys.exit(cli_main(sys.argv))
