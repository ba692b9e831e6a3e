"""``python -m minidet.cli``: the ``minidet`` command."""

from . import main

main()
