"""The ``gpubundle`` command line on the target host: verify, install, doctor, status, uninstall.

Commands live in their own modules and are loaded on first use, so ``--help``
stays fast and a command whose optional dependency is missing cannot break
the others. ``bundler.cli`` extends this group with the connected-side
commands (build, distros).
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import logging
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from installer import __version__
from installer.console import Console
from installer.errors import ExitCode, GpubundleError
from installer.hostpaths import HostPaths
from installer.trust import Trust, load_trust

F = TypeVar("F", bound=Callable[..., Any])

# command name -> "module:attribute" of a click.Command
TARGET_COMMANDS: dict[str, str] = {
    "verify": "installer.cmd_verify:verify",
    "install": "installer.cmd_install:install",
    "doctor": "installer.cmd_doctor:doctor",
    "status": "installer.cmd_status:status",
    "uninstall": "installer.cmd_uninstall:uninstall",
    "sbom": "installer.cmd_sbom:sbom",
    "diff": "installer.cmd_diff:diff_command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when listed or run."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available()})

    def _available(self) -> list[str]:
        names = []
        for name, target in self.lazy.items():
            module = target.split(":", 1)[0]
            if importlib.util.find_spec(module) is not None:
                names.append(name)
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name in self._available():
            module_name, attr = self.lazy[cmd_name].split(":", 1)
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


def json_option(func: F) -> F:
    return click.option(
        "--json",
        "json_mode",
        is_flag=True,
        help="Print one JSON document on stdout instead of text.",
    )(func)


TRUST_HELP = (
    "Full fingerprint of a key whose signature you accept (repeatable); "
    "keys in /etc/gpubundle/trusted.d are trusted too."
)


def trust_option(help: str = TRUST_HELP) -> Callable[[F], F]:
    """``--trust FINGERPRINT`` (repeatable), as every command that reads a bundle takes it."""

    def decorate(func: F) -> F:
        return click.option("--trust", "trust", multiple=True, metavar="FINGERPRINT", help=help)(
            func
        )

    return decorate


def trusted_keys(values: Sequence[str], trust_dir: Path, console: Console) -> Trust:
    """``--trust`` plus trusted.d's keys; each unreadable key file a warning, shown."""
    trusted = load_trust(list(values), trust_dir)
    for warning in trusted.warnings:
        console.warn(warning)
    return trusted


def host_paths() -> HostPaths:
    """The host's paths for this command: made once by the group (``main(obj=HostPaths(root))``
    in tests), or from the environment when a command runs without it."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(HostPaths) if ctx is not None else None
    return found if found is not None else HostPaths.from_environment()


def handle_errors(console: Console, action: Callable[[], Any]) -> Any:
    """Run a command body, turning GpubundleError into its message (or JSON) and exit code."""
    try:
        return action()
    except GpubundleError as err:
        if console.json_mode:
            console.emit({"ok": False, **err.as_dict()})
        else:
            click.echo(err.render(), err=True)
        sys.exit(int(err.code))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A disk that filled where no step expected it: still words, never a traceback.
        from installer.diskspace import no_space_error

        full = no_space_error(exc.filename if isinstance(exc.filename, str) else None, exc)
        if console.json_mode:
            console.emit({"ok": False, **full.as_dict()})
        else:
            click.echo(full.render(), err=True)
        sys.exit(int(full.code))
    except KeyboardInterrupt:
        click.echo("interrupted; re-run the same command to finish or roll back", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))


def make_group(extra: dict[str, str] | None = None) -> click.Group:
    @click.group(
        cls=LazyGroup,
        lazy={**TARGET_COMMANDS, **(extra or {})},
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @click.version_option(__version__, prog_name="gpubundle")
    @click.option("--debug", is_flag=True, help="Log every external command as it runs.")
    def group(debug: bool) -> None:
        """Offline NVIDIA Container Toolkit for air-gapped GPU hosts.

        \b
        On a connected machine:   gpubundle build --distro ubuntu22.04 --sign-key FPR
        On the air-gapped host:   sudo sh gpubundle-installer.pyz install BUNDLE \\
                                      --trust FPR

        Every command takes --help; most take --json for machine-readable output.
        """
        configure_logging(debug)
        ctx = click.get_current_context()
        if not isinstance(ctx.obj, HostPaths):
            ctx.obj = HostPaths.from_environment()
        # Which interpreter: the host's, or the one the installer carries (bundler/selfrun.sh).
        logging.getLogger(__name__).debug(
            "python %s (%s)", platform.python_version(), sys.executable
        )

    return group


OWN_LOGGERS = ("installer", "bundler", "__main__")


class _OwnRecords(logging.Filter):
    """Our own loggers' records; a library's (python-gnupg's "gpg returned a non-zero error
    code", urllib3's retries) only under --debug: our errors already say what went wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in OWN_LOGGERS


def configure_logging(debug: bool) -> None:
    """One stderr handler on the root logger (once per process): DEBUG with --debug and
    every library's records, else WARNING and only ours."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "gpubundle", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        setattr(handler, "gpubundle", True)  # noqa: B010 (a marker, not a declared attribute)
        root.addHandler(handler)
    for old in list(handler.filters):
        handler.removeFilter(old)
    if not debug:
        handler.addFilter(_OwnRecords())
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


main = make_group()
