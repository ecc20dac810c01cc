"""``python3 gpubundle-installer.pyz`` and ``python3 -m installer``: the target-side command."""

from installer.cli import main

main()
