"""NVIDIA CDI specs as YAML text: one gpubundle would generate (``CDI_YAML``, its
nvidia-smi under /usr/local/nvidia) and a real spec generated for an older driver than the
host's (``REAL_SPEC_OLD_DRIVER``)."""

from __future__ import annotations

CDI_YAML = """\
---
cdiVersion: 0.5.0
containerEdits:
  mounts:
  - containerPath: /usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04
    hostPath: /usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04
  - containerPath: /usr/local/nvidia/bin/nvidia-smi
    hostPath: /usr/local/nvidia/bin/nvidia-smi
    options: [ro, nosuid, nodev, bind]
kind: nvidia.com/gpu
"""


REAL_SPEC_OLD_DRIVER = """\
---
cdiVersion: 0.5.0
containerEdits:
  hooks:
  - args:
    - nvidia-cdi-hook
    - enable-cuda-compat
    - --host-driver-version=550.54.15
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
  mounts:
  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options:
    - ro
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: all
kind: nvidia.com/gpu
"""
