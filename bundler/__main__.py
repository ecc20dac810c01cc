"""``python3 -m bundler``: the ``gpubundle`` command without a console script on PATH (sudo)."""

from bundler.cli import main

main()
