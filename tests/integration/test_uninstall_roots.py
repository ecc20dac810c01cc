"""``gpubundle uninstall`` in real Ubuntu 22.04 and Debian 12 roots with the network cut.

Same world as test_install_roots.py: a debootstrap minbase root (plus python3 and
gpgv), the stand-in toolkit family in a signed bundle, and the shipped zipapp run
by the root's own python3 under ``unshare -n chroot``. The root is first made to
look like a host where apt has run (``prime_apt``: apt's lists infrastructure, and an
extended_states with an entry of its own). Its state is compared as data
(tests/support/rootsnapshot.py): dpkg's package table, the apt sources, the keyrings,
gpubundle's own paths, and apt's lists and extended_states byte for byte.

- ``uninstall --dry-run`` lists what it would remove and changes nothing;
- ``uninstall --yes`` purges the packages (their conffiles too; config.toml, which
  toolkit-base's postinst made, goes as well), and removes the apt source, the key,
  apt's lists of that source, the packages' auto-installed marks and the bundle
  store: the root is exactly as before install; a second uninstall has nothing to do;
- install again, then ``uninstall --purge --yes`` (kept for older scripts): the same.
The whole root, path by path, is compared in test_uninstall_inverse.py.

Kept by design, and left out of the comparison: the install reports in
/var/log/gpubundle (what was done to the host, kept for its administrator, like
apt's own /var/log/apt/history.log), and the empty lock file /run/gpubundle.lock
(a lock file must outlive its holders: removing it while another run waits on it
would let two runs in at once; /run is emptied at boot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from installer import layout
from tests.support import testkeys
from tests.support.inroot import BUNDLE, gpubundle, ok_json, prime_apt, proc_mounted
from tests.support.installbundles import bundle_for_root
from tests.support.rootfiles import FAMILY, INCLUDE, VERSION
from tests.support.roots import debootstrap_root
from tests.support.rootsnapshot import RootState, capture, differences
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

KEPT_BY_DESIGN = (layout.LOG_DIR, layout.LOCK_FILE)
CONFIG_TOML = "etc/nvidia-container-runtime/config.toml"  # made by toolkit-base's postinst
SOURCES = "/etc/apt/sources.list.d/gpubundle.list"
RECORD = "var/lib/gpubundle/install-record.json"
EXTENDED_STATES = "/var/lib/apt/extended_states"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle uninstall test")


def install(root: Path, fingerprint: str) -> dict[str, Any]:
    return ok_json(
        gpubundle(root, "install", BUNDLE, "--trust", fingerprint, "--runtime", "none",
                  "--skip-gpu-checks", "--yes", "--json")
    )  # fmt: skip


def state(root: Path) -> RootState:
    return capture(root).without(KEPT_BY_DESIGN)


def assert_installed(root: Path, now: RootState, fingerprint: str) -> None:
    for name in FAMILY:
        assert now.packages[name] == (VERSION, "install ok installed"), name
    assert SOURCES in now.sources
    keyring = f"/usr/share/keyrings/gpubundle-{fingerprint[-16:].lower()}.gpg"
    assert keyring in now.keyrings
    assert (root / CONFIG_TOML).is_file()
    assert (root / RECORD).is_file()


@pytest.mark.parametrize("distro", ["ubuntu22.04", "debian12"])
def test_uninstall_restores_the_root(
    distro: str,
    tmp_path: Path,
    key: testkeys.TestKey,
    installer_pyz: Path,
    standin_repo: ServedStandin,
) -> None:
    root = debootstrap_root(distro, "minbase", INCLUDE, dest=tmp_path / "root")
    bundle_for_root(
        root, distro, tmp_path / "out", key, standin_repo,
        pyz=installer_pyz, toolkit_version=VERSION,
    )  # fmt: skip
    with proc_mounted(root):
        prime_apt(root)
        before = state(root)
        install(root, key.fingerprint)
        installed = state(root)
        assert_installed(root, installed, key.fingerprint)
        # What uninstall must take back from apt: our source's lists and auto marks.
        new_apt = {p for p in installed.apt.keys() - before.apt.keys() if "/lists/" in p}
        assert new_apt and all("_var_lib_gpubundle_bundles_" in p for p in new_apt), new_apt
        assert installed.apt[EXTENDED_STATES] != before.apt[EXTENDED_STATES]

        # --dry-run: the plan, in words and as data; nothing changes.
        dry_text = gpubundle(root, "uninstall", "--dry-run")
        assert dry_text.returncode == 0, dry_text.stderr
        dry = ok_json(gpubundle(root, "uninstall", "--dry-run", "--json"))
        assert dry["dry_run"] is True and dry["nothing_to_do"] is False
        kinds = {a["kind"]: a["targets"] for a in dry["actions"]}
        assert sorted(kinds["remove-packages"]) == sorted(FAMILY)
        assert SOURCES in kinds["remove-paths"]
        assert set(kinds["remove-apt-lists"]) == new_apt
        assert "unmark-auto" in kinds
        for name in (*FAMILY, SOURCES):
            assert name in dry_text.stdout, f"dry run does not mention {name}"  # the plan: stdout
        assert differences(installed, state(root)) == []
        assert (root / RECORD).is_file()

        # uninstall: back to before, conffiles and the postinst's config.toml included.
        done = ok_json(gpubundle(root, "uninstall", "--yes", "--json"))
        assert done["dry_run"] is False and done["purge"] is False
        after = state(root)
        assert differences(before, after) == []
        assert not (root / CONFIG_TOML).exists()
        assert not (root / RECORD).exists()

        # A second uninstall has nothing to do and changes nothing.
        again = gpubundle(root, "uninstall", "--yes")
        assert again.returncode == 0, again.stderr
        assert "nothing to do" in again.stdout
        assert ok_json(gpubundle(root, "uninstall", "--yes", "--json"))["nothing_to_do"] is True
        assert differences(after, state(root)) == []

        # Install again, then --purge: exactly as before the first install too.
        install(root, key.fingerprint)
        assert_installed(root, state(root), key.fingerprint)
        purged = ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
        assert purged["purge"] is True
        assert differences(before, state(root)) == []
        assert not (root / CONFIG_TOML).exists()
