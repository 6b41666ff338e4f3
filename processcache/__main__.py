"""``python -m processcache`` is the ``processcache`` command."""

from .cli import main

main(prog_name="processcache")
