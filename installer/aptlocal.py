"""The bundle's local apt repository, and apt run hermetically against it.

apt sees exactly one source, ours: ``apt-get`` gets its own sources list and
no sources.list.d, so it never consults another repository, never touches the
network and never hangs on a proxy; the other lists under /var/lib/apt/lists
are kept. The source is ``signed-by`` the bundle signer's key, so apt checks
the local ``InRelease`` as it would a mirror's. Argv builders are pure; one
executor runs apt and turns its failures into advice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from installer.atomicfile import write_atomically
from installer.errors import GpubundleError
from installer.manifest import Manifest
from installer.openpgp import dearmor, normalize_fingerprint
from installer.runner import run, run_detached, tail

# Characters apt's URItoFileName escapes as %xx (apt-pkg/contrib/strutl.cc), besides
# control characters, space and non-ASCII; then every "/" becomes "_".
_APT_QUOTED = set('\\|{}[]<>"^~_=!@#$%^*')
DPKG_LOCK_TIMEOUT_S = 120
# What a person runs after an interrupted dpkg; conffiles kept as apt's install keeps them.
DPKG_CONFIGURE_PENDING = (
    "dpkg",
    "--configure",
    "-a",
    "--force-confdef",
    "--force-confold",
)
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "l"}


def keyring_path(fingerprint: str, keyrings_dir: Path) -> Path:
    """Where the signer's key goes: named by its long key id (the fingerprint's last 16 digits)."""
    return keyrings_dir / f"gpubundle-{normalize_fingerprint(fingerprint)[-16:].lower()}.gpg"


def sources_line(repo_dir: Path, keyring: Path) -> str:
    """One flat ``file:`` source; the trailing slashes are what apt's flat-repo syntax needs."""
    return f"deb [signed-by={keyring}] file:{str(repo_dir).rstrip('/')}/ /\n"


def apt_options(sources_list: Path) -> list[str]:
    """Options that make apt read only ``sources_list`` and wait for the dpkg lock."""
    return [
        "-o",
        f"Dir::Etc::sourcelist={sources_list}",
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        "APT::Get::List-Cleanup=0",
        "-o",
        f"DPkg::Lock::Timeout={DPKG_LOCK_TIMEOUT_S}",
    ]


def apt_update_argv(sources_list: Path) -> list[str]:
    return ["apt-get", "update", "-q", *apt_options(sources_list)]


def apt_mark_manual_argv(sources_list: Path, names: Iterable[str]) -> list[str]:
    """``apt-mark manual NAMES``: apt drops their "Auto-Installed" entries from extended_states."""
    return ["apt-mark", *apt_options(sources_list), "manual", *sorted(names)]


def list_file_prefix(repo_dir: Path) -> str:
    """The start of every file name apt gives, under /var/lib/apt/lists, to the source
    ``file:REPO_DIR/`` (apt's ``URItoFileName``: no scheme, some characters as %xx, "/" as "_").
    """
    uri = str(repo_dir).rstrip("/") + "/"
    quoted = "".join(
        f"%{ord(c):02x}" if c in _APT_QUOTED or ord(c) <= 0x20 or ord(c) >= 0x7F else c for c in uri
    )
    return quoted.replace("/", "_")


def source_lists(repo_dir: Path, lists_dir: Path) -> list[Path]:
    """apt's list files of the local source in ``lists_dir`` and its ``partial/`` (a killed
    ``apt-get update`` leaves downloads there). The prefix holds the bundle's sha256, so
    nothing of another source can match."""
    prefix = list_file_prefix(repo_dir)
    found: list[Path] = []
    for where in (lists_dir, lists_dir / "partial"):
        if where.is_dir():
            found += (p for p in where.iterdir() if p.name.startswith(prefix))
    return sorted(found)


def auto_installed(extended_states: str) -> set[str]:
    """Names (without architecture) marked ``Auto-Installed: 1`` in extended_states' text."""
    marked: set[str] = set()
    for stanza in extended_states.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Auto-Installed") == "1" and "Package" in fields:
            marked.add(fields["Package"])
    return marked


def apt_install_argv(
    sources_list: Path, pins: Mapping[str, str], *, allow_downgrades: bool = False
) -> list[str]:
    """``apt-get install NAME=VERSION…`` from the local source only; ``allow_downgrades``
    (install --allow-downgrade) lets apt and dpkg take installed packages down to them."""
    return [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        *(["--allow-downgrades"] if allow_downgrades else []),
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        *apt_options(sources_list),
        *(f"{name}={version}" for name, version in sorted(pins.items())),
    ]


def requested_pins(manifest: Manifest) -> dict[str, str]:
    """{name: version} of the packages the bundle was built for, as apt will be asked for them."""
    versions = {
        p.name: p.version for p in manifest.packages if p.architecture in (manifest.arch, "all")
    }
    missing = [name for name in manifest.requested if name not in versions]
    if missing:
        raise GpubundleError(
            f"the bundle requests {', '.join(missing)} but does not contain it",
            hint="the bundle is inconsistent; rebuild it with gpubundle build",
        )
    return {name: versions[name] for name in manifest.requested}


def _write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write ``data`` to ``path`` atomically unless it is already there; True if written."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    write_atomically(path, data, mode)
    return True


def install_source(
    signer_key: bytes,
    fingerprint: str,
    repo_dir: Path,
    sources_list: Path,
    keyrings_dir: Path,
) -> list[Path]:
    """Install the signer's key (binary, world-readable for apt's _apt user) and the source.

    Returns both paths; each is rewritten only when its content differs.
    """
    keyring = keyring_path(fingerprint, keyrings_dir)
    _write_if_changed(keyring, dearmor(signer_key))
    _write_if_changed(sources_list, sources_line(repo_dir, keyring).encode())
    return [keyring, sources_list]


def source_is_installed(
    signer_key: bytes,
    fingerprint: str,
    repo_dir: Path,
    sources_list: Path,
    keyrings_dir: Path,
) -> bool:
    """Whether ``install_source`` would change nothing."""
    keyring = keyring_path(fingerprint, keyrings_dir)
    try:
        return (
            keyring.read_bytes() == dearmor(signer_key)
            and sources_list.read_bytes() == sources_line(repo_dir, keyring).encode()
        )
    except FileNotFoundError:
        return False


def _advice(output: str) -> str:
    if "Could not get lock" in output or "Unable to acquire the dpkg frontend lock" in output:
        return (
            f"another apt or dpkg run held the package lock for over {DPKG_LOCK_TIMEOUT_S} s; "
            "wait for it to finish (ps aux | grep -E 'apt|dpkg'), then run install again"
        )
    if "dpkg was interrupted" in output:
        return "an earlier dpkg run was interrupted: run `dpkg --configure -a`, then install again"
    if "Held packages were changed" in output or "held packages" in output:
        return "a package the bundle installs is held: `apt-mark showhold`, `apt-mark unhold NAME`"
    if "NO_PUBKEY" in output or "is not signed" in output or "Signature" in output:
        return (
            "apt rejected the local repository's signature; re-run install from the original bundle"
        )
    if "unmet dependencies" in output or "Depends:" in output:
        return (
            "a package the bundle relies on is missing or held at another version on this host; "
            "check `apt-mark showhold` and the host's distro version, or rebuild the bundle "
            "against this host's release"
        )
    return "read apt's output above, fix what it names, then run install again"


def first_errors(output: str) -> list[str]:
    """apt's first ``E:`` line and dpkg's first error line, in the order they came: the
    cause, where the last lines are often only apt's summary."""
    apt_error = next((ln.strip() for ln in output.splitlines() if ln.startswith("E: ")), "")
    dpkg_error = next(
        (ln.strip() for ln in output.splitlines() if ln.startswith("dpkg: error")), ""
    )
    return [line for line in (dpkg_error, apt_error) if line]


def apt_failure(
    what: str, program: str, code: int, output: str, log_path: Path | None
) -> GpubundleError:
    """The error for a failed apt or dpkg run: its own first error lines in the message,
    the end of its output and where the whole of it lies in the details."""
    errors = first_errors(output)
    cause = f": {errors[-1]}" if errors else ""
    details = [*errors[:-1], *tail(output, 20)]
    if log_path is not None:
        details.append(f"full output: {log_path}")
    return GpubundleError(
        f"{what} failed ({program} exit code {code}){cause}",
        hint=_advice(output),
        details=details,
    )


def run_apt(
    argv: list[str],
    what: str,
    log_path: Path | None = None,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run apt-get (or dpkg) ``argv``; on failure raise with its first error line, the tail
    of its output and what to do.

    With ``log_path`` it runs detached (``runner.run_detached``): its output goes to that
    log and it finishes its work even when gpubundle is killed; a re-run then finds the
    dpkg lock held until it is done and waits.
    """
    hint = f"{argv[0]} comes with {'dpkg' if argv[0] == 'dpkg' else 'apt'}"
    if log_path is not None:
        code, output = run_detached(argv, log_path, env=APT_ENV, on_line=on_line, hint=hint)
    else:
        proc = run(argv, env=APT_ENV, check=False, hint=hint)
        code = proc.returncode
        output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    if code != 0:
        raise apt_failure(what, argv[0], code, output, log_path)
    return output


def changed_packages(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """{name: version} of packages that are new or at another version after apt ran."""
    return {name: version for name, version in sorted(after.items()) if before.get(name) != version}
