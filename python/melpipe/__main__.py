"""``python -m melpipe …``: the ``melpipe`` command."""

from ._cli import main

main()
