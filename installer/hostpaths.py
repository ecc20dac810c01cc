"""Every host path the target-side commands write or read by name, under one root.

One ``HostPaths`` is made by each command (``HostPaths.system()``: the host's own
``/``) and passed down to the steps, the record, the plans and the engine calls
that need a path; tests pass ``HostPaths(tmp_path)`` instead of patching module
globals. The names under the root are the system's (``layout`` names gpubundle's
own directories), so ``HostPaths.system().record`` is
``/var/lib/gpubundle/install-record.json``.

``GPUBUNDLE_RECORD``, ``GPUBUNDLE_LOCK`` and ``GPUBUNDLE_DPKG_ADMINDIR``
(``from_environment``) point the record, the lock and dpkg's database elsewhere, for
tests that run the command line as a program. There is no ``--root`` option: the CLI
always works on ``/``; tests give the group ``HostPaths(root)`` (``main(obj=…)``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from installer import layout

CRI_CONFIGS = {  # the file install configures for each CRI engine
    "containerd": "/etc/containerd/config.toml",
    "crio": "/etc/crio/crio.conf.d/99-nvidia.toml",  # a drop-in: crio.conf stays untouched
}
# What install's packages step makes that dpkg does not own (installer/unownedpaths.py),
# by the names the install record keeps: as the host sees them, joined under the root
# when read or removed.
TOOLKIT_CONFIG_DIR = "/etc/nvidia-container-runtime"  # toolkit-base's postinst makes it
TOOLKIT_CONFIG = f"{TOOLKIT_CONFIG_DIR}/config.toml"  # and this, with nvidia-ctk
HOOK_LINK = "/usr/bin/nvidia-container-toolkit"  # toolkit's postinst; only its purge removes it
DIVERTED_LIB = "/lib.usr-is-merged"  # where dpkg puts /lib under base-files' diversion
UNOWNED_PATHS = (TOOLKIT_CONFIG_DIR, TOOLKIT_CONFIG, HOOK_LINK, DIVERTED_LIB)
RECORD_NAME = "install-record.json"
RECORD_MIRROR_NAME = "install-record.backup.json"
LEDGER_NAME = "installed-packages.ledger"


@dataclass(frozen=True)
class HostPaths:
    """The host's paths under ``root``; ``record_file``, ``lock_file`` and
    ``dpkg_admin_override`` override three of them."""

    root: Path = Path("/")
    record_file: Path | None = None
    lock_file: Path | None = None
    dpkg_admin_override: Path | None = None

    @classmethod
    def system(cls) -> HostPaths:
        return cls(Path("/"))

    @classmethod
    def from_environment(cls) -> HostPaths:
        """The host's own paths, with the record, the lock and dpkg's database where the
        environment says."""
        record, lock = os.environ.get("GPUBUNDLE_RECORD"), os.environ.get("GPUBUNDLE_LOCK")
        admin = os.environ.get("GPUBUNDLE_DPKG_ADMINDIR")
        return cls(
            Path("/"),
            record_file=Path(record) if record else None,
            lock_file=Path(lock) if lock else None,
            dpkg_admin_override=Path(admin) if admin else None,
        )

    def under(self, path: str | Path) -> Path:
        """``path`` (absolute on the host) under this root."""
        return self.root / str(path).lstrip("/")

    # --- gpubundle's own ------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.under(layout.STATE_DIR)

    @property
    def bundles(self) -> Path:
        """Extracted bundles, one directory per bundle sha256."""
        return self.state_dir / "bundles"

    @property
    def record(self) -> Path:
        return self.record_file or self.state_dir / RECORD_NAME

    @property
    def record_mirror(self) -> Path:
        return self.record.with_name(RECORD_MIRROR_NAME)

    @property
    def ledger(self) -> Path:
        return self.record.with_name(LEDGER_NAME)

    @property
    def runtime_backups(self) -> Path:
        """Copies of daemon.json (or the TOML file) taken before the runtime step changed it."""
        return self.state_dir / "backup"

    @property
    def log_dir(self) -> Path:
        return self.under(layout.LOG_DIR)

    @property
    def backups_dir(self) -> Path:
        """Uninstall's copies of files changed since install, a directory per run."""
        return self.under(layout.BACKUPS_DIR)

    @property
    def lock(self) -> Path:
        return self.lock_file or self.under(layout.LOCK_FILE)

    @property
    def trust_dir(self) -> Path:
        return self.under(layout.TRUST_DIR)

    # --- the system's ----------------------------------------------------------------

    @property
    def sources_list(self) -> Path:
        return self.under("/etc/apt/sources.list.d/gpubundle.list")

    @property
    def keyrings_dir(self) -> Path:
        return self.under("/usr/share/keyrings")

    @property
    def apt_lists_dir(self) -> Path:
        return self.under("/var/lib/apt/lists")

    @property
    def apt_extended_states(self) -> Path:
        return self.under("/var/lib/apt/extended_states")

    @property
    def cdi_spec(self) -> Path:
        """The CDI spec install generates for Docker."""
        return self.under("/var/run/cdi/nvidia.yaml")

    @property
    def os_release_files(self) -> tuple[Path, ...]:
        """os-release(5): the first of these that exists."""
        return (self.under("/etc/os-release"), self.under("/usr/lib/os-release"))

    @property
    def proc(self) -> Path:
        return self.under("/proc")

    @property
    def dev(self) -> Path:
        return self.under("/dev")

    @property
    def usr_dir(self) -> Path:
        """Where the packages' files go (room for them: ``installer.diskspace``)."""
        return self.under("/usr")

    @property
    def dpkg_admin_dir(self) -> Path:
        """dpkg's database: status, its journal (updates/), info/, its locks."""
        return self.dpkg_admin_override or self.under("/var/lib/dpkg")

    @property
    def apt_state_dir(self) -> Path:
        return self.under("/var/lib/apt")

    @property
    def apt_lists_lock(self) -> Path:
        """apt-get update holds this one, not dpkg's: install runs apt-get update too."""
        return self.apt_lists_dir / "lock"

    @property
    def apt_cache_dir(self) -> Path:
        return self.under("/var/cache/apt")

    def init_script(self, name: str) -> Path:
        """The SysV init script of service ``name``."""
        return self.under(f"/etc/init.d/{name}")

    # Docker's

    @property
    def docker_daemon_json(self) -> Path:
        """daemon.json where dockerd is not told ``--config-file``."""
        return self.under("/etc/docker/daemon.json")

    @property
    def docker_pidfile(self) -> Path:
        return self.under("/var/run/docker.pid")

    @property
    def docker_data_dir(self) -> Path:
        return self.under("/var/lib/docker")

    @property
    def docker_snap_paths(self) -> tuple[Path, ...]:
        """Any of these: Docker is installed as a snap."""
        return (self.under("/snap/bin/docker"), self.under("/var/snap/docker"))

    @property
    def docker_snap_daemon_json(self) -> Path:
        return self.under("/var/snap/docker/current/config/daemon.json")

    @property
    def docker_sysv_script(self) -> Path:
        return self.init_script("docker")

    @property
    def docker_sysv_pidfile(self) -> Path:
        """The pidfile of Debian's init script (start-stop-daemon)."""
        return self.under("/var/run/docker-ssd.pid")

    # containerd's and CRI-O's

    def cri_config(self, runtime: str) -> Path:
        """The TOML file install configures for ``runtime`` (containerd or crio)."""
        return self.under(CRI_CONFIGS[runtime])

    # the NVIDIA Container Toolkit's and the kernel's, as the doctor reads them

    @property
    def nvidia_runtime_config(self) -> Path:
        return self.under(TOOLKIT_CONFIG)

    @property
    def cdi_dirs(self) -> tuple[Path, ...]:
        """Where CDI specs are read from (``cdi_spec`` is the one install writes)."""
        return (self.under("/etc/cdi"), self.under("/var/run/cdi"))

    @property
    def dev_char(self) -> Path:
        return self.dev / "char"

    @property
    def selinux_enforce(self) -> Path:
        return self.under("/sys/fs/selinux/enforce")
