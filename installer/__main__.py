"""``sh gpubundle-installer.pyz`` (or ``python3 …``) and ``python3 -m installer``: the target-side command."""

from installer.cli import main

main()
