"""The resolver on crafted indices (one behaviour per test) and on NVIDIA's real index."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundler.index import PackageIndex, PackageRecord
from bundler.resolver import resolve, toolkit_family_pins
from installer.errors import ResolutionError


def stanza(name: str, version: str = "1", arch: str = "amd64", **fields: str) -> str:
    extra = "".join(f"{k.replace('_', '-')}: {v}\n" for k, v in fields.items())
    return f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{extra}"


def index(*stanzas: str, source: str = "main") -> PackageIndex:
    data = "\n".join(stanzas).encode()
    return PackageIndex(source, f"http://example/{source}", data, "amd64")


def installed(*stanzas: str) -> dict[str, PackageRecord]:
    idx = index(*stanzas, source="dpkg-status")
    return {r.name: r for r in idx.records()}


def pairs(indices: list[PackageIndex], roots: list[str], **kw: object) -> set[tuple[str, str]]:
    return resolve(indices, roots, arch="amd64", **kw).pairs()  # type: ignore[arg-type]


def test_chain_highest_version_and_no_essentials() -> None:
    a = index(
        stanza("app", Depends="lib (>= 1.5)"),
        stanza("lib", "1.0"),
        stanza("base", Essential="yes", Priority="required"),
    )
    b = index(stanza("lib", "2.0"), source="updates")
    res = resolve([a, b], ["app"], arch="amd64")
    assert res.pairs() == {("app", "1"), ("lib", "2.0")}
    assert next(p for p in res.packages if p.name == "lib").source_id == "updates"
    assert res.chain("lib") == ["app", "lib"]


def test_first_installable_alternative() -> None:
    idx = index(
        stanza("app", Depends="missing | broken | good | other"),
        stanza("broken", Depends="nowhere"),
        stanza("good"),
        stanza("other"),
    )
    assert pairs([idx], ["app"]) == {("app", "1"), ("good", "1")}


def test_installed_alternative_wins() -> None:
    idx = index(
        stanza("app", Depends="first | second (>= 2)"), stanza("first"), stanza("second", "2")
    )
    have = installed(stanza("second", "1"))
    # second is installed, too old: apt upgrades it rather than add the earlier alternative
    assert pairs([idx], ["app"], installed=have) == {("app", "1"), ("second", "2")}


def test_satisfied_by_installed_is_not_added() -> None:
    idx = index(stanza("app", Depends="lib (>= 1)"), stanza("lib", "3"))
    assert pairs([idx], ["app"], installed=installed(stanza("lib", "2"))) == {("app", "1")}


def test_too_old_installed_is_upgraded() -> None:
    idx = index(stanza("app", Depends="lib (>= 3)"), stanza("lib", "3"))
    have = installed(stanza("lib", "2"))
    assert pairs([idx], ["app"], installed=have) == {("app", "1"), ("lib", "3")}


def test_installed_root_at_candidate_is_kept() -> None:
    idx = index(stanza("app", "1"))
    assert pairs([idx], ["app"], installed=installed(stanza("app", "1"))) == set()


def test_virtual_packages() -> None:
    idx = index(
        stanza("app", Depends="awk, virt (>= 2), real"),
        stanza("mawk", Provides="awk", Priority="required"),
        stanza("gawk", Provides="awk", Priority="optional"),
        stanza("old", Provides="virt (= 1)"),
        stanza("new", Provides="virt (= 2)"),
        stanza("real"),
        stanza("fake-real", Provides="real"),
    )
    assert pairs([idx], ["app"]) == {
        ("app", "1"),
        ("mawk", "1"),  # Priority: required sorts before optional
        ("new", "1"),  # only the versioned provide that matches
        ("real", "1"),  # the real package before a provider
    }


def test_any_needs_multi_arch_allowed() -> None:
    ok = index(stanza("app", Depends="tool:any"), stanza("tool", Multi_Arch="allowed"))
    assert pairs([ok], ["app"]) == {("app", "1"), ("tool", "1")}
    bad = index(stanza("app", Depends="tool:any"), stanza("tool"))
    with pytest.raises(ResolutionError):
        resolve([bad], ["app"], arch="amd64")


def test_unsatisfiable_chain_is_explained() -> None:
    idx = index(stanza("a", Depends="b"), stanza("b", Depends="c (>= 2)"))
    old = index(stanza("c", "1.9"), source="X")
    with pytest.raises(ResolutionError) as info:
        resolve([idx, old], ["a"], arch="amd64")
    text = "\n".join(info.value.details)
    assert "c (>= 2)" in text and "only 1.9 from X available" in text
    assert "b 1 depends on" in text


def test_pins() -> None:
    idx = index(stanza("app", "1"), stanza("app", "2"), stanza("lib", "1"), stanza("lib", "2"))
    assert pairs([idx], ["app"], pins={"app": "1"}) == {("app", "1")}
    with pytest.raises(ResolutionError, match="app=9"):
        resolve([idx], ["app"], arch="amd64", pins={"app": "9"})


def test_conflicts_in_result_fail() -> None:
    idx = index(stanza("a", Depends="b", Breaks="c"), stanza("b", Depends="c"), stanza("c"))
    with pytest.raises(ResolutionError, match="conflict"):
        resolve([idx], ["a"], arch="amd64")


def test_unknown_root() -> None:
    with pytest.raises(ResolutionError, match="not available"):
        resolve([index(stanza("a"))], ["zzz"], arch="amd64")


@pytest.fixture(scope="module")
def nvidia(nvidia_fixtures: Path) -> PackageIndex:
    data = (nvidia_fixtures / "stable/deb/amd64/Packages").read_bytes()
    return PackageIndex("nvidia", "https://x", data, "amd64")


@pytest.fixture(scope="module")
def distro() -> PackageIndex:
    return index(
        stanza("libc6", "2.35", Multi_Arch="same", Priority="required"),
        stanza("libcap2", "1:2.44"),
        stanza("libseccomp2", "2.5.3"),
    )


def test_nvidia_latest(nvidia: PackageIndex, distro: PackageIndex) -> None:
    got = dict(pairs([distro, nvidia], ["nvidia-container-toolkit"]))
    assert got["nvidia-container-toolkit"] == "1.20.1-1"
    assert got["libnvidia-container1"] == "1.20.1-1"
    assert {"libc6", "libcap2", "libseccomp2", "nvidia-container-toolkit-base"} <= set(got)


def test_nvidia_old_toolkit_drifts_without_family_pins(
    nvidia: PackageIndex, distro: PackageIndex
) -> None:
    pins = {"nvidia-container-toolkit": "1.17.8-1", "nvidia-container-toolkit-base": "1.17.8-1"}
    got = dict(pairs([distro, nvidia], ["nvidia-container-toolkit"], pins=pins))
    assert got["libnvidia-container-tools"] == "1.20.1-1"  # (>= 1.17.8-1), (<< 2.0.0)
    with pytest.raises(ResolutionError) as info:  # base (= 1.17.8-1) but 1.20.1-1 is the candidate
        resolve(
            [distro, nvidia],
            ["nvidia-container-toolkit"],
            arch="amd64",
            pins={"nvidia-container-toolkit": "1.17.8-1"},
        )
    assert "pin nvidia-container-toolkit-base to 1.17.8-1" in "\n".join(info.value.details)
    family = toolkit_family_pins("1.17.8-1")
    got = dict(pairs([distro, nvidia], list(family), pins=family))
    assert {got[name] for name in family} == {"1.17.8-1"}
