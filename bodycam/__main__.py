"""``python -m bodycam`` is the ``bodycam`` command."""

from bodycam.cli import run

run()
