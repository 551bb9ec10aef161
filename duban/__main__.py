"""``python -m duban``: the command line (as the ``duban`` script)."""

from duban.cli import app

app(prog_name="duban")
