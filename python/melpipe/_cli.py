"""The ``melpipe`` command of the Python package: the same command as the cargo-built binary."""

import signal
import sys


class _Signal(BaseException):
    """SIGTERM or SIGHUP, raised by the handler below for the native command to act on."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise(signum, _frame):
    raise _Signal(signum)


def main() -> None:
    """Runs ``melpipe`` with this process's arguments and exits with its code.

    SIGINT reaches the command as ``KeyboardInterrupt``; SIGTERM and SIGHUP (unless this process
    was started with them ignored, as ``nohup`` does) through the handler above: the first stops a
    run cleanly, keeping what it committed, a second ends it at once with 130, as the binary.
    """
    from ._native import cli_main

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _raise)
    sys.exit(cli_main(["melpipe", *sys.argv[1:]]))
