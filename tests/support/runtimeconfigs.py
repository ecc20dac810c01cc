"""Container runtime configurations as users have them, and nvidia-ctk fakes that rewrite
them: Docker's daemon.json (``USER_CONFIG``, ``CTK_LIKE_NVIDIA``: a fake nvidia-ctk that
rewrites the whole file like NVIDIA's code), containerd's and CRI-O's TOML
(``CONTAINERD_V2``, ``CRIO_DROPIN``), what containerd 1.x and 2.x load from them
(``DUMP_1X``, ``DUMP_2X``: real `config dump` excerpts), and ``install_standin_ctk``, which puts the test
world's stand-in nvidia-ctk on a PATH directory."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.standin_nvidia import STANDIN_BIN

USER_CONFIG = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "features": {"buildkit": True},
    "registry-mirrors": ["http://127.0.0.1:5999"],
    "runtimes": {"crun": {"path": "/usr/bin/crun"}},
    "max-concurrent-downloads": 3,
}


CTK_LIKE_NVIDIA = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
open(os.environ["CTK_LOG"], "a").write(" ".join(args) + "\n")
path = [a.split("=", 1)[1] for a in args if a.startswith("--config=")][0]
cfg = json.load(open(path)) if os.path.exists(path) and open(path).read().strip() else {}
cfg.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
if "--set-as-default" in args:
    cfg["default-runtime"] = "nvidia"
if "--cdi.enabled" in args:
    cfg["features"] = {"cdi": True}  # what NVIDIA's EnableCDI does to a decoded object
open(path, "w").write(json.dumps(cfg, indent=4, sort_keys=True))
"""


CONTAINERD_V2 = """# the user's comment
version = 2
oom_score = -500

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
"""


CRIO_DROPIN = """[crio.runtime]
log_level = "info"
"""


# Excerpts of real `containerd config dump` output, templates of ``{disabled}`` (the
# disabled_plugins list) and ``{name}`` (the runtime's name). containerd 2.2.1 (Ubuntu 24.04) dumps
# version 3 with single-quoted strings, a version 2 file migrated; with a version 2 file
# whose `io.containerd.grpc.v1.cri` is disabled it dumps the runtime under both names.
DUMP_2X = """version = 3
root = '/var/lib/containerd'
disabled_plugins = {disabled}
imports = ['/etc/containerd/conf.d/*.toml']

[plugins]
  [plugins.'io.containerd.cri.v1.runtime']
    enable_cdi = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{name}]
          runtime_type = 'io.containerd.runc.v2'
          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{name}.options]
            BinaryName = '/usr/bin/nvidia-container-runtime'
"""
# containerd 1.6.20 (Debian 12): version 2, double quotes, a disabled plugin's table left out.
DUMP_1X = """version = 2
root = "/var/lib/containerd"
disabled_plugins = {disabled}

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".containerd]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
            BinaryName = "/usr/bin/nvidia-container-runtime"
"""


def install_standin_ctk(bindir: Path, extra: str = "") -> None:
    """nvidia-ctk on PATH: the stand-in, plus ``extra`` Python run after it (to break it)."""
    bindir.mkdir(exist_ok=True)
    real = bindir / "standin.py"
    real.write_text((STANDIN_BIN / "nvidia_ctk.py").read_text().replace("@VERSION@", "1.17.8"))
    wrapper = bindir / "nvidia-ctk"
    wrapper.write_text(
        f"#!{sys.executable}\nimport subprocess, sys\n"
        f"rc = subprocess.call([{sys.executable!r}, {str(real)!r}, *sys.argv[1:]])\n"
        "p = [a.split('=', 1)[1] for a in sys.argv[1:] if a.startswith('--config=')][0]\n"
        f"{extra}\nsys.exit(rc)\n"
    )
    wrapper.chmod(0o755)
