"""The full ``gpubundle`` command: the target-side commands plus build and distros."""

from __future__ import annotations

from installer.cli import make_group

BUILD_COMMANDS = {
    "build": "bundler.cmd_build:build",
    "distros": "bundler.cmd_distros:distros",
}

main = make_group(BUILD_COMMANDS)
