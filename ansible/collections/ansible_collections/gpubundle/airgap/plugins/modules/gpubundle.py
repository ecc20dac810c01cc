#!/usr/bin/python
# Copyright: gpubundle contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Ansible module: run gpubundle's installer on an air-gapped host and report as Ansible does."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpubundle
short_description: Install, verify, diagnose or uninstall the NVIDIA Container Toolkit offline with gpubundle
version_added: "0.1.0"
description:
  - Runs C(python3 gpubundle-installer.pyz COMMAND ... --json) on the managed host and maps
    its JSON document and exit code onto Ansible's conventions.
  - The installer and the bundle must already be on the host (the M(gpubundle.airgap.gpubundle)
    module copies nothing; the C(gpubundle.airgap.install) role copies them when the host lacks
    them with the same sha256).
  - C(changed) is true only when the installer says it changed something (C(install --json)
    reports C(result.changed); C(uninstall) has something to undo). C(verify), C(doctor) and
    C(status) never change the host.
  - A failure carries the installer's own message, hint and exit code (3 verification, 4 host
    requirements, 6 locked, 1 other failures, 2 usage).
  - In check mode C(install) and C(uninstall) run with C(--dry-run) (verify, check the host,
    print the plan); C(changed) says whether the plan has work to do, and diff mode shows the
    plan's changes. C(doctor) writes no archive in check mode.
options:
  command:
    description: What to run.
    type: str
    required: true
    choices: [install, verify, uninstall, doctor, status]
  installer:
    description: Path of C(gpubundle-installer.pyz) on the managed host.
    type: path
    required: true
  bundle:
    description:
      - Path of the bundle on the managed host, a C(.tar.zst) file, or for a split bundle its
        C(NAME.parts.json) with every part beside it.
      - Required for O(command=install) and O(command=verify).
    type: path
  trust:
    description:
      - Fingerprints of the keys whose signature the host accepts (C(--trust)); keys in
        C(/etc/gpubundle/trusted.d) on the host are trusted too.
    type: list
    elements: str
    default: []
  runtime:
    description: The container runtime install configures; V(none) installs the packages only.
    type: str
    choices: [docker, containerd, crio, none]
    default: docker
  skip_gpu_checks:
    description: Install on a host without a GPU right now (C(--skip-gpu-checks)).
    type: bool
    default: false
  keep_images:
    description: For O(command=uninstall), keep the images install loaded (C(--keep-images)).
    type: bool
    default: false
  collect:
    description:
      - For O(command=doctor), also write a redacted diagnostic tar.gz to this path on the host
        (C(--collect)); fetch it with M(ansible.builtin.fetch). Not written in check mode.
    type: path
  images:
    description: For O(command=doctor), also check these local images (C(--image), repeatable).
    type: list
    elements: str
    default: []
  fail_on_findings:
    description:
      - For O(command=doctor), fail the task when a check fails. By default the findings are
        returned as data and the task succeeds.
    type: bool
    default: false
  python:
    description: The host's interpreter that runs the installer (its stock python3).
    type: str
    default: python3
author:
  - gpubundle contributors
notes:
  - The host needs only its stock python3 and gpgv; no network access.
  - Rolling installs over many hosts, with the playbooks of this collection, are described in
    the gpubundle repository's docs/fleet.md.
"""

EXAMPLES = r"""
- name: Verify the bundle
  gpubundle.airgap.gpubundle:
    command: verify
    installer: /var/tmp/gpubundle/gpubundle-installer.pyz
    bundle: /var/tmp/gpubundle/gpubundle-ubuntu22.04-amd64-1.20.1-1.tar.zst
    trust: [0123456789ABCDEF0123456789ABCDEF01234567]

- name: Install (check mode prints the plan)
  gpubundle.airgap.gpubundle:
    command: install
    installer: /var/tmp/gpubundle/gpubundle-installer.pyz
    bundle: /var/tmp/gpubundle/gpubundle-ubuntu22.04-amd64-1.20.1-1.tar.zst
    trust: [0123456789ABCDEF0123456789ABCDEF01234567]
  register: installed

- name: Diagnose, findings as data
  gpubundle.airgap.gpubundle:
    command: doctor
    installer: /var/tmp/gpubundle/gpubundle-installer.pyz
    collect: /var/tmp/gpubundle/doctor.tar.gz
  register: doctor
"""

RETURN = r"""
gpubundle:
  description: The installer's whole C(--json) document (null when it printed none).
  returned: always
  type: dict
rc:
  description: The installer's exit code.
  returned: always
  type: int
exit_code:
  description: The installer's exit code as its error document states it.
  returned: failure
  type: int
hint:
  description: What the installer says to do about the failure.
  returned: failure
  type: str
plan:
  description: The install plan (steps, each with C(pending) and C(changes)).
  returned: command is install
  type: dict
record:
  description: The install record after the run.
  returned: command is install, not in check mode
  type: dict
actions:
  description: The uninstall plan's actions.
  returned: command is uninstall
  type: list
findings:
  description: The doctor's findings, one dict per check (id, status, summary, fix ...).
  returned: command is doctor
  type: list
status:
  description: The doctor's worst status (ok, warning or failure).
  returned: command is doctor
  type: str
collected:
  description: The diagnostic archive written on the host (C(file), C(members)).
  returned: command is doctor with collect, not in check mode
  type: dict
"""

# Ansible's layout: the documentation strings come first, then the imports.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gpubundle.airgap.plugins.module_utils.gpubundle_result import (  # noqa: E402
    installer_argv,
    task_result,
)

ARGUMENT_SPEC = {
    "command": {
        "type": "str",
        "required": True,
        "choices": ["install", "verify", "uninstall", "doctor", "status"],
    },
    "installer": {"type": "path", "required": True},
    "bundle": {"type": "path"},
    "trust": {"type": "list", "elements": "str", "default": []},
    "runtime": {
        "type": "str",
        "choices": ["docker", "containerd", "crio", "none"],
        "default": "docker",
    },
    "skip_gpu_checks": {"type": "bool", "default": False},
    "keep_images": {"type": "bool", "default": False},
    "collect": {"type": "path"},
    "images": {"type": "list", "elements": "str", "default": []},
    "fail_on_findings": {"type": "bool", "default": False},
    "python": {"type": "str", "default": "python3"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("command", "install", ("bundle",)), ("command", "verify", ("bundle",))],
        supports_check_mode=True,
    )
    params = module.params
    argv = installer_argv(params, module.check_mode)
    rc, stdout, stderr = module.run_command(
        argv, check_rc=False, environ_update={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    )
    result = task_result(
        params["command"], rc, stdout, stderr, module.check_mode, params["fail_on_findings"]
    )
    result["cmd"] = argv
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
