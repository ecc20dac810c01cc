"""The gpubundle.airgap collection as Ansible's own tools see it: ``ansible-lint`` (the
production profile, offline) finds nothing; ``ansible-doc`` renders the module's options
and the roles' argument specs; ``ansible-galaxy collection build`` packs it and
``ansible-galaxy collection install`` installs that archive, as users install it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.ansibleplay import COLLECTION, COLLECTIONS, tool

pytestmark = [pytest.mark.integration]


def ansible(name: str, *args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    found = tool(name)
    if found is None:
        pytest.skip(f"{name} not found: pip install -e '.[dev]' (ansible-core, ansible-lint)")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_HOME": str(home),
           "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "PYTHONWARNINGS": "ignore"}  # fmt: skip
    return subprocess.run(
        [found, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_ansible_lint_is_clean(tmp_path: Path) -> None:
    proc = ansible("ansible-lint", "--nocolor", cwd=COLLECTION, home=tmp_path)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout


def test_ansible_doc_renders_the_module_and_roles(tmp_path: Path) -> None:
    module = ansible("ansible-doc", "gpubundle.airgap.gpubundle", cwd=tmp_path, home=tmp_path)
    assert module.returncode == 0, module.stderr
    for option in ("command", "installer", "bundle", "trust", "runtime", "collect"):
        assert option in module.stdout, option
    role = ansible("ansible-doc", "-t", "role", "gpubundle.airgap.install", cwd=tmp_path,
                   home=tmp_path)  # fmt: skip
    assert role.returncode == 0, role.stderr
    assert "gpubundle_trust" in role.stdout


def test_collection_builds_and_installs(tmp_path: Path) -> None:
    built = ansible("ansible-galaxy", "collection", "build", str(COLLECTION), "--output-path",
                    str(tmp_path), cwd=tmp_path, home=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr
    archive = tmp_path / "gpubundle-airgap-0.1.0.tar.gz"
    assert archive.is_file(), built.stdout
    installed = ansible("ansible-galaxy", "collection", "install", "--force", str(archive), "-p",
                        str(tmp_path / "installed"), cwd=tmp_path, home=tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    target = tmp_path / "installed" / "ansible_collections" / "gpubundle" / "airgap"
    assert (target / "plugins" / "modules" / "gpubundle.py").is_file()
    assert (target / "playbooks" / "install.yml").is_file()
