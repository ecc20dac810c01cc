"""The doctor's TOML reader for Pythons without tomllib (3.8 to 3.10), held to tomllib."""

from __future__ import annotations

import pytest
import tomllib

from installer.doctor import tomlread
from tests.support.runtimeconfigs import CONTAINERD_V2, CRIO_DROPIN

# containerd's config as users and packages write it: comments, indented tables, arrays
# over several lines, inline tables, literal and escaped strings, dotted keys.
USER = r"""# /etc/containerd/config.toml
version = 2
root = "/var/lib/containerd"   # trailing comment
disabled_plugins = [
  "io.containerd.snapshotter.v1.zfs",  # zfs is not here
  'io.containerd.snapshotter.v1.btrfs',
]
required_plugins = []
oom_score = -999
imports = ["/etc/containerd/conf.d/*.toml"]

[grpc]
  address = "/run/containerd/containerd.sock"
  max_recv_message_size = 16_777_216
  tcp_tls_ca = 'C:\path\not\escaped'

[timeouts]
  "io.containerd.timeout.shim.cleanup" = "5s"

[plugins."io.containerd.grpc.v1.cri"]
  enable_cdi = true
  cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  registry.mirrors = { "docker.io" = { endpoint = ["http://127.0.0.1:5000"] } }
  max_concurrent_downloads = 3
  float_value = 1.5e3
  escaped = "tab\there \"quoted\" \u00e9"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "nvidia"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
      runtime_type = "io.containerd.runc.v2"
      privileged_without_host_devices = false
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
        BinaryName = "/usr/bin/nvidia-container-runtime"
        SystemdCgroup = true

[[proxy_plugins_list]]
  name = "one"
[[proxy_plugins_list]]
  name = "two"
  [proxy_plugins_list.extra]
    on = true

[notes]
  text = '''
raw \n text'''
  more = \"\"\"
one \
  two "quoted" ""\"\"\"
"""
USER = USER.replace('\\"\\"\\"', '"""')


@pytest.mark.parametrize("text", [USER, CONTAINERD_V2, CRIO_DROPIN, "", "# only a comment\n"])
def test_the_reader_reads_as_tomllib_does(text: str) -> None:
    assert tomlread.read(text) == tomllib.loads(text)


def test_loads_is_tomllib_where_python_has_it() -> None:
    assert tomlread.loads(USER) == tomllib.loads(USER)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('version = 2\n[plugins."io.containerd.grpc.v1.cri"\n', 2),
        ("a = 1\nb = \n", 2),
        ('a = "open\n', 1),
        ("a = [1, 2\nb = 3\n", 2),
        ("a = 1 b = 2\n", 1),
        ("a = 1\na.b = 2\n", 2),
    ],
)
def test_bad_toml_is_an_error_with_its_line(text: str, line: int) -> None:
    with pytest.raises(ValueError, match=rf"\(line {line}\)"):
        tomlread.read(text)
