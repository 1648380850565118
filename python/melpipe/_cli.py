"""The ``melpipe`` command of the Python package: the same command as the cargo-built binary."""

import sys


def main() -> None:
    """Runs ``melpipe`` with this process's arguments and exits with its code.

    The command takes SIGINT, SIGTERM and SIGHUP as the binary does (the first stops a run
    cleanly, keeping what it committed; a second ends it with 130); for that nothing here may start
    a thread before it (``melpipe/__init__.py`` imports numpy only when asked).
    """
    from ._native import cli_main

    sys.exit(cli_main(["melpipe", *sys.argv[1:]]))
