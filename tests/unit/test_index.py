"""Packages parsing on NVIDIA's real index and on crafted stanzas."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundler.index import PackageIndex, Relation, parse_relations

BASE = "https://nvidia.github.io/libnvidia-container/stable/deb/amd64"


@pytest.fixture(scope="module")
def nvidia(nvidia_fixtures: Path) -> PackageIndex:
    data = (nvidia_fixtures / "stable/deb/amd64/Packages").read_bytes()
    return PackageIndex("nvidia", BASE, data, "amd64")


def test_nvidia_index_shape(nvidia: PackageIndex) -> None:
    records = list(nvidia.records())
    assert len(nvidia) == 170 and len(records) == 170
    names = {r.name for r in records}
    for name in ("libnvidia-container1", "nvidia-container-toolkit", "libnvidia-container-tools"):
        assert len(nvidia.versions(name)) == 28
    assert {r.version for r in nvidia.versions("nvidia-docker2")} == {"2.14.0-1"}
    assert nvidia.versions("nvidia-docker2")[0].architecture == "all"
    assert "nvidia-container-runtime" in names


def test_nvidia_record_fields(nvidia: PackageIndex) -> None:
    lib = next(r for r in nvidia.versions("libnvidia-container1") if r.version == "1.14.0-1")
    assert lib.multi_arch == "same"
    assert lib.filename.startswith("./libnvidia-container1_1.14.0-1_amd64.deb")
    assert lib.url == f"{BASE}/libnvidia-container1_1.14.0-1_amd64.deb"
    assert len(lib.sha256) == 64 and len(lib.sha512) == 128 and lib.size > 0
    deps = {alt.name: alt for group in lib.depends for alt in group}
    assert deps["libcap2"] == Relation("libcap2", "", ">=", "1:2.10")
    assert deps["libseccomp2"].version == "0.0.0~20120605"


def test_toolkit_dependency_shapes(nvidia: PackageIndex) -> None:
    new = next(r for r in nvidia.versions("nvidia-container-toolkit") if r.version == "1.18.0-1")
    assert ((Relation("nvidia-container-toolkit-base", "", "=", "1.18.0-1"),)) in new.depends
    old = next(r for r in nvidia.versions("nvidia-container-toolkit") if r.version == "1.17.8-1")
    tools = [g for g in old.depends if g[0].name == "libnvidia-container-tools"]
    assert [g[0].op for g in tools] == [">=", "<<"]
    base = nvidia.versions("nvidia-container-toolkit-base")[0]
    assert base.depends == () and base.breaks


def test_parse_relations_forms() -> None:
    groups = parse_relations(
        "a (>= 1:2~b) | b:any, c:native (<< 3), d [amd64], e [!amd64], f <!nocheck>"
    )
    assert groups == (
        (Relation("a", "", ">=", "1:2~b"), Relation("b", "any")),
        (Relation("c", "native", "<<", "3"),),
        (Relation("d"),),
        (Relation("f"),),
    )
    assert parse_relations("x (< 1), y (> 2)") == (
        (Relation("x", "", "<=", "1"),),
        (Relation("y", "", ">=", "2"),),
    )
    assert parse_relations("g <stage1>") == ()
    with pytest.raises(ValueError):
        parse_relations("bad (>= )")


def test_lazy_index_and_provides() -> None:
    data = (
        b"Package: real\nVersion: 1\nArchitecture: amd64\nProvides: virt (= 2), other\n"
        b"Description: x\n Package: fake continuation\n\n"
        b"Package: foreign\nVersion: 1\nArchitecture: arm64\n\n"
        b"Package: sha512only\nVersion: 1\nArchitecture: all\nSHA512: ab\n"
    )
    index = PackageIndex("s", "http://h", data, "amd64")
    assert len(index) == 3
    assert index.versions("foreign") == []
    assert [r.name for r in index.providers("virt")] == ["real"]
    assert index.providers("fake") == []
    rec = index.versions("sha512only")[0]
    assert rec.sha256 == "" and rec.sha512 == "ab"
    assert index.versions("real")[0].provides == (
        Relation("virt", "", "=", "2"),
        Relation("other"),
    )


INDEX_TEXT = b"""Package: a
Version: 1
Architecture: amd64
Provides: virt

Package: b
Version: 2
Architecture: all
Depends: a
"""


def _same(first: PackageIndex, second: PackageIndex) -> None:
    assert [(r.name, r.version) for r in first.records()] == [
        (r.name, r.version) for r in second.records()
    ]
    assert [r.name for r in first.providers("virt")] == [r.name for r in second.providers("virt")]


def test_from_file_caches_offsets_beside_the_index(tmp_path: Path) -> None:
    path = tmp_path / "Packages"
    path.write_bytes(INDEX_TEXT)
    fresh = PackageIndex.from_file("src", "http://x", path, "amd64")
    sidecar = tmp_path / "Packages.offsets"
    assert sidecar.exists()
    _same(fresh, PackageIndex("src", "http://x", INDEX_TEXT, "amd64"))
    # A second load reads the sidecar: a sidecar that lied would show here.
    cached = PackageIndex.from_file("src", "http://x", path, "amd64")
    _same(cached, fresh)
    assert cached._starts == fresh._starts

    # The file changes (a new index under the same name): the sidecar no longer counts.
    changed = INDEX_TEXT.replace(b"Package: b", b"Package: c")
    path.write_bytes(changed)
    reloaded = PackageIndex.from_file("src", "http://x", path, "amd64")
    assert [r.name for r in reloaded.records()] == ["a", "c"]

    sidecar.write_bytes(b"not marshal")  # damaged: rescanned, rewritten
    assert [r.name for r in PackageIndex.from_file("s", "u", path, "amd64").records()] == ["a", "c"]
