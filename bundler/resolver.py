"""A pure port of apt's resolver for ``apt-get install --no-install-recommends ROOTS``.

What is implemented, after apt's ``pkgDepCache::MarkInstall`` (apt 2.x):

- Candidate: the highest version across all sources (every source has apt's
  default priority 500; the first source wins a tie); an installed version
  newer than every available one stays the candidate (apt never downgrades at
  priority < 1000). ``pins`` replace the candidate of a package by an exact
  version, as ``apt-get install NAME=VERSION`` does.
- Roots are marked first (all of them), then each root's dependencies are
  installed; an installed root at its candidate version is left alone.
- For every Pre-Depends/Depends OR-group not yet satisfied by what is
  installed or marked, apt collects the candidate versions that satisfy each
  alternative (the real package and the providers, versioned Provides
  included), sorts each alternative's list with apt's ``CompareProviders``
  (protected, installed, the real package before providers, Essential,
  Important, native architecture, Priority, and finally the later-created
  package, whose creation order we take as first mention in the indices),
  puts every already-installed package's version before all new ones across
  the whole group, and installs the first one whose own critical
  dependencies are satisfiable by candidates. A failing dependency discards
  the package (not what it already pulled in) and apt tries the next one.
- ``:any`` is satisfied by ``Multi-Arch: allowed`` versions only; ``:native``
  and ``:ARCH`` of the native architecture like an unqualified name.
- Essential/required packages are not added unless something depends on them.
- Breaks/Conflicts are checked on the result; apt's problem resolver (which
  may remove installed packages) is not imitated: a conflict is an error.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bundler.index import PackageIndex, PackageRecord, Relation
from installer.debversion import compare, satisfies, version_key
from installer.errors import ResolutionError

TOOLKIT_FAMILY = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
_PRIORITY = {"required": 1, "important": 2, "standard": 3, "optional": 4, "extra": 5}


def toolkit_family_pins(version: str) -> dict[str, str]:
    """Pins holding the four toolkit packages at one version (before 1.18 only a pin does)."""
    return dict.fromkeys(TOOLKIT_FAMILY, version)


@dataclass(frozen=True)
class Resolution:
    """What apt would install (new packages and upgrades), sorted by name, and why."""

    packages: tuple[PackageRecord, ...]
    reasons: Mapping[str, str] = field(default_factory=dict)  # name -> first dependent or ""

    def chain(self, name: str) -> list[str]:
        """``[root, ..., name]``: the path of first dependents that pulled ``name`` in."""
        path = [name]
        while self.reasons.get(path[-1]) and len(path) <= len(self.reasons):
            path.append(self.reasons[path[-1]])
        return path[::-1]

    def pairs(self) -> set[tuple[str, str]]:
        return {(p.name, p.version) for p in self.packages}


def _priority(record: PackageRecord) -> int:
    return _PRIORITY.get(record.priority, 5) if record.priority else 0


def _version_ok(version: str, rel: Relation) -> bool:
    return not rel.op or satisfies(version, rel.op, rel.version)


def real_satisfies(rel: Relation, record: PackageRecord) -> bool:
    """Whether ``record`` (a version of the package ``rel.name``) satisfies ``rel``."""
    if rel.arch_qualifier == "any" and record.multi_arch != "allowed":
        return False
    return record.name == rel.name and _version_ok(record.version, rel)


def provides_satisfies(rel: Relation, record: PackageRecord) -> bool:
    """Whether a Provides of ``record`` satisfies ``rel`` (versioned deps need ``(= V)``)."""
    if rel.arch_qualifier == "any" and record.multi_arch != "allowed":
        return False
    for prv in record.provides:
        if prv.name != rel.name:
            continue
        if not rel.op or (prv.op == "=" and satisfies(prv.version, rel.op, rel.version)):
            return True
    return False


def satisfied_by(rel: Relation, record: PackageRecord) -> bool:
    return real_satisfies(rel, record) or provides_satisfies(rel, record)


class _Resolver:
    def __init__(
        self,
        indices: Sequence[PackageIndex],
        arch: str,
        installed: Mapping[str, PackageRecord],
        pins: Mapping[str, str],
    ) -> None:
        self.indices = indices
        self.arch = arch
        self.installed = dict(installed)
        self.pins = dict(pins)
        self.marked: dict[str, PackageRecord] = {}
        self.protected: set[str] = set()
        self.reasons: dict[str, str] = {}
        self.failures: dict[str, list[str]] = {}
        self._candidates: dict[str, PackageRecord | None] = {}
        self._active: set[str] = set()
        self._state_providers: dict[str, set[str]] = {}
        for record in self.installed.values():
            self._add_provides(record)

    # -- what exists -------------------------------------------------------
    @functools.cache  # noqa: B019 - the resolver lives for one resolution
    def available(self, name: str) -> tuple[PackageRecord, ...]:
        return tuple(r for index in self.indices for r in index.versions(name))

    @functools.cache  # noqa: B019
    def provider_names(self, name: str) -> tuple[str, ...]:
        names = {r.name for index in self.indices for r in index.providers(name)}
        names.update(
            n for n, r in self.installed.items() if any(p.name == name for p in r.provides)
        )
        return tuple(sorted(names))

    def candidate(self, name: str) -> PackageRecord | None:
        if name in self._candidates:
            return self._candidates[name]
        versions = self.available(name)
        best: PackageRecord | None = None
        if name in self.pins:
            best = next((r for r in versions if compare(r.version, self.pins[name]) == 0), None)
        else:
            for record in versions:
                if best is None or version_key(record.version) > version_key(best.version):
                    best = record
            current = self.installed.get(name)
            if current is not None and (
                best is None or version_key(current.version) > version_key(best.version)
            ):
                best = current
        self._candidates[name] = best
        return best

    def state(self, name: str) -> PackageRecord | None:
        """The version ``name`` will have after the operation (marked, else installed)."""
        return self.marked.get(name) or self.installed.get(name)

    def _is_current(self, name: str, record: PackageRecord | None) -> bool:
        current = self.installed.get(name)
        return record is not None and current is not None and current.version == record.version

    def _add_provides(self, record: PackageRecord) -> None:
        for prv in record.provides:
            self._state_providers.setdefault(prv.name, set()).add(record.name)

    # -- dependency states -------------------------------------------------
    def satisfied_now(self, rel: Relation) -> bool:
        """apt's DepInstall: satisfied by the installed-or-marked state."""
        real = self.state(rel.name)
        if real is not None and real_satisfies(rel, real):
            return True
        for owner in self._state_providers.get(rel.name, ()):
            record = self.state(owner)
            if record is not None and provides_satisfies(rel, record):
                return True
        return False

    def candidate_solutions(self, rel: Relation) -> list[PackageRecord]:
        """Candidate versions satisfying ``rel`` (apt's FromDependency with CANDIDATE)."""
        found: list[PackageRecord] = []
        real = self.candidate(rel.name)
        if real is not None and real_satisfies(rel, real):
            found.append(real)
        for owner in self.provider_names(rel.name):
            record = self.candidate(owner)
            if record is not None and provides_satisfies(rel, record) and record not in found:
                found.append(record)
        return found

    def _creation_order(self, name: str) -> tuple[int, int]:
        """apt's package ID order proxy: first stanza of the name in index order."""
        for position, index in enumerate(self.indices):
            offset = index.first_offset(name)
            if offset is not None:
                return position, offset
        return len(self.indices), 0

    def _compare_providers(self, a: PackageRecord, b: PackageRecord, target: str) -> int:
        """apt's CompareProviders as a cmp function: negative when ``a`` goes first."""
        ka: tuple[object, ...] = (
            a.name not in self.protected,
            not (a.multi_arch == "same" and a.name in self.installed),
            a.name not in self.installed,
            a.name != target,
            not a.essential,
            not a.important,
            a.architecture not in (self.arch, "all"),
            _priority(a),
        )
        kb: tuple[object, ...] = (
            b.name not in self.protected,
            not (b.multi_arch == "same" and b.name in self.installed),
            b.name not in self.installed,
            b.name != target,
            not b.essential,
            not b.important,
            b.architecture not in (self.arch, "all"),
            _priority(b),
        )
        if ka != kb:
            return -1 if ka < kb else 1
        oa, ob = self._creation_order(a.name), self._creation_order(b.name)
        return (oa < ob) - (oa > ob)  # the later-created package first

    def possible_solutions(self, group: Sequence[Relation]) -> list[PackageRecord]:
        upgrades: list[PackageRecord] = []
        new: list[PackageRecord] = []
        for rel in group:
            found = self.candidate_solutions(rel)
            order = functools.partial(self._compare_providers, target=rel.name)
            found.sort(key=functools.cmp_to_key(order))
            for record in found:
                (upgrades if record.name in self.installed else new).append(record)
        result: list[PackageRecord] = []
        for record in upgrades + new:
            if record not in result and not (
                record.name in self.protected and self.state(record.name) is None
            ):
                result.append(record)
        return result

    # -- marking -----------------------------------------------------------
    def _critical_groups(self, record: PackageRecord) -> tuple[tuple[Relation, ...], ...]:
        return record.pre_depends + record.depends

    def _set_state(self, name: str, record: PackageRecord) -> None:
        if self._is_current(name, record):
            return
        self.marked[name] = record
        self._add_provides(record)

    def _discard(self, name: str) -> None:
        self.marked.pop(name, None)
        self._candidates[name] = self.installed.get(name)

    def mark_install(self, name: str, *, auto: bool, from_user: bool, parent: str = "") -> bool:
        candidate = self.candidate(name)
        if candidate is None:
            return False
        protected = name in self.protected
        if name in self._active:
            return True  # a dependency cycle: the package is being marked right now
        if not protected and (self._is_current(name, candidate) or name in self.marked):
            return True
        if auto and not self._is_current(name, candidate):
            for group in self._critical_groups(candidate):
                if not any(self.satisfied_now(r) or self.candidate_solutions(r) for r in group):
                    self.failures[name] = [self._explain_group(name, candidate, group)]
                    if not protected:
                        self._candidates[name] = self.installed.get(name)
                    return False
        if from_user:
            self._set_state(name, candidate)
        if not auto:
            return True
        to_install = [
            g
            for g in self._critical_groups(candidate)
            if protected or not any(self.satisfied_now(r) for r in g)
        ]
        if not from_user:
            self._set_state(name, candidate)
        if parent and name in self.marked:
            self.reasons.setdefault(name, parent)
        fail_early = not protected and not from_user
        self._active.add(name)
        self.protected.add(name)
        try:
            ok = self._install_dependencies(name, to_install, protected, fail_early)
        finally:
            self._active.discard(name)
            if not protected:
                self.protected.discard(name)
        if not ok and fail_early:
            self._discard(name)
            return False
        return ok

    def _install_dependencies(
        self, name: str, groups: Iterable[tuple[Relation, ...]], protect: bool, fail_early: bool
    ) -> bool:
        ok = True
        for group in groups:
            if any(self.satisfied_now(r) for r in group):
                if protect:
                    self._propagate_protection(group)
                continue
            solutions = self.possible_solutions(group)
            found = False
            for record in solutions:
                if self.candidate(record.name) is not record:
                    continue
                if protect and len(solutions) == 1:
                    if not self.mark_install(record.name, auto=False, from_user=False):
                        continue
                    self.protected.add(record.name)
                if self.mark_install(record.name, auto=True, from_user=False, parent=name):
                    found = True
                    break
            if not found:
                ok = False
                candidate = self.candidate(name)
                if candidate is not None:
                    self.failures.setdefault(name, []).append(
                        self._explain_group(name, candidate, group)
                    )
                if fail_early:
                    break
        return ok

    def _propagate_protection(self, group: tuple[Relation, ...]) -> None:
        """apt protects the single solution of a satisfied critical dep of a protected package."""
        # apt counts versions (candidate and installed): an upgradable package is two.
        solutions: set[tuple[str, str]] = set()
        for rel in group:
            solutions.update((r.name, r.version) for r in self.candidate_solutions(rel))
            for owner in (rel.name, *self.provider_names(rel.name)):
                current = self.installed.get(owner)
                if current is not None and satisfied_by(rel, current):
                    solutions.add((owner, current.version))
        if len(solutions) != 1:
            return
        ((only, _version),) = solutions
        if only in self.protected:
            return
        self.protected.add(only)
        self.mark_install(only, auto=True, from_user=False)

    # -- explanations ------------------------------------------------------
    def _explain_group(
        self, name: str, candidate: PackageRecord, group: tuple[Relation, ...]
    ) -> str:
        wanted = " | ".join(str(r) for r in group)
        reasons = [self._explain_relation(r) for r in group]
        return f"{name} {candidate.version} depends on {wanted}: " + "; ".join(reasons)

    def _explain_relation(self, rel: Relation) -> str:
        versions = self.available(rel.name)
        if not versions and not self.provider_names(rel.name):
            return f"{rel.name} is not available from any source"
        solutions = self.candidate_solutions(rel)
        if not solutions:
            matching = [r for r in versions if real_satisfies(rel, r)]
            candidate = self.candidate(rel.name)
            if matching and candidate is not None:
                return (
                    f"{rel.name} {candidate.version} is the version to be installed; "
                    f"pin {rel.name} to {matching[-1].version} to use it"
                )
            newest = sorted(versions, key=lambda r: version_key(r.version))[-3:]
            listed = ", ".join(f"{r.version} from {r.source_id}" for r in newest)
            return f"only {listed or 'providers that do not match'} available"
        inner = [line for r in solutions for line in self.failures.get(r.name, [])]
        return " → ".join(inner) if inner else f"{rel.name} cannot be installed"


def resolve(
    indices: Sequence[PackageIndex],
    roots: Sequence[str],
    *,
    arch: str,
    installed: Mapping[str, PackageRecord] | None = None,
    pins: Mapping[str, str] | None = None,
    multiarch_foreign: Sequence[str] = (),
) -> Resolution:
    """What ``apt-get install --no-install-recommends ROOTS`` would install, or ResolutionError.

    ``installed`` maps names to their installed records (see bundler.dpkgstatus);
    ``pins`` maps names to exact versions; ``multiarch_foreign`` names foreign
    architectures enabled on the target (their packages are only used when a
    dependency names the architecture explicitly).
    """
    del multiarch_foreign  # foreign-arch records never reach the candidate set
    resolver = _Resolver(indices, arch, installed or {}, pins or {})
    _check_pins(resolver)
    for root in roots:
        if resolver.candidate(root) is None:
            raise ResolutionError(
                f"package {root} is not available from any source",
                hint="check the package name and that its repository is among the sources",
            )
        resolver.protected.add(root)
        resolver.mark_install(root, auto=False, from_user=True)
    for root in roots:
        if not resolver.mark_install(root, auto=True, from_user=True):
            raise ResolutionError(
                f"cannot install {root}: its dependencies cannot be satisfied",
                hint="pin another version, or add the source that provides the missing package",
                details=resolver.failures.get(root, []) or [f"{root} cannot be installed"],
            )
    packages = tuple(sorted(resolver.marked.values(), key=lambda r: r.name))
    _check_conflicts(resolver)
    reasons = {p.name: resolver.reasons.get(p.name, "") for p in packages}
    return Resolution(packages=packages, reasons=reasons)


def _check_pins(resolver: _Resolver) -> None:
    for name, version in sorted(resolver.pins.items()):
        if resolver.candidate(name) is None:
            have = ", ".join(sorted({r.version for r in resolver.available(name)})) or "none"
            raise ResolutionError(
                f"pinned version {name}={version} is not available",
                hint="choose a version that the sources list",
                details=[f"available versions of {name}: {have}"],
            )


def _check_conflicts(resolver: _Resolver) -> None:
    final = {**resolver.installed, **resolver.marked}
    problems: list[str] = []
    for record in final.values():
        for kind, groups in (("breaks", record.breaks), ("conflicts with", record.conflicts)):
            for group in groups:
                for rel in group:
                    for other in (rel.name, *resolver.provider_names(rel.name)):
                        target = final.get(other)
                        if target is None or target.name == record.name:
                            continue
                        hit = real_satisfies(rel, target) or (
                            provides_satisfies(rel, target) and not rel.op
                        )
                        if hit and (record.name in resolver.marked or other in resolver.marked):
                            problems.append(
                                f"{record.name} {record.version} {kind} {rel}: "
                                f"{target.name} {target.version} would be installed"
                            )
    if problems:
        raise ResolutionError(
            "the resolved packages conflict with each other",
            hint="pin other versions, or remove the conflicting package from the target first",
            details=sorted(set(problems)),
        )
