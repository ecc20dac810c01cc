"""No module of installer/ keeps a host path in a global: they are ``HostPaths``' alone.

Every path the target side reads or writes on the host is a property of
``installer.hostpaths.HostPaths(root)``, made by the command and passed down, so a test
root sees its own files and no test patches a module global. This scans every module of
installer/ for module-level assignments whose value holds an absolute path
(``Path("/…")``, ``PurePosixPath("/…")`` or a string starting with ``/``), alone or in a
tuple, list, set or dict; and every default of a function's parameter or a class's field
that names one (``is_systemd(comm=Path("/proc/1/comm"))``). hostpaths.py and layout.py (gpubundle's own directories, joined
under the root by HostPaths) are where such names belong; the allow-list holds the few
absolute names that are no host path of the installer's, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

INSTALLER = Path(__file__).resolve().parents[2] / "installer"
HOME = ("hostpaths.py", "layout.py")  # where host path names belong
PATH_TYPES = ("Path", "PurePath", "PurePosixPath")

ALLOWED = {
    # Inside a container image, not on the host.
    ("computeproof.py", "PROBE_PATH"): "where the verification image holds the compute probe",
    ("doctor/images.py", "GLIBC_LOADERS"): "the glibc loader looked for inside an image",
    # Programs and libraries found the way the loader and PATH find them, then run.
    ("doctor/traps.py", "DEFAULT_PATH"): "the PATH a login shell has, to find nvidia-smi on",
    ("gpu.py", "NVML_LIBRARIES"): "names dlopen() is given for NVML",
    ("gpu.py", "SMI_LOCATIONS"): "where nvidia-smi is run from when PATH lacks it",
    ("runtime_config.py", "NVIDIA_CTK_LOCATIONS"): "where nvidia-ctk is run from off PATH",
    # The daemons' own names, passed to their clients or matched in their argv.
    ("criengine.py", "CONTAINERD_SOCKET"): "containerd's default socket, given to ctr",
    ("criengine.py", "CRIO_SOCKET"): "CRI-O's default socket, given to crictl",
    ("criengine.py", "DOCKERS_CONTAINERD"): "a --config prefix of dockerd's own containerd",
    # Words of the install plan: what apt, dpkg and the packages' scripts change.
    ("installplan.py", "APT_BOOKKEEPING"): "the plan's list of what apt and dpkg write",
    ("installplan.py", "SCRIPT_EFFECTS"): "the plan's list of what maintainer scripts write",
}


def _absolute(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value[:1] == "/"


def _holds_host_path(node: ast.AST) -> bool:
    """``node`` is an absolute path: a Path call of one, a string, or a container of them."""
    if _absolute(node):
        return True
    if isinstance(node, ast.Call):
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        return name in PATH_TYPES and bool(node.args) and _absolute(node.args[0])
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_holds_host_path(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return any(_holds_host_path(v) for v in node.values)
    if isinstance(node, ast.BinOp):  # Path("/etc") / "x"
        return _holds_host_path(node.left)
    return False


def module_host_paths(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, name) of every module-level assignment of an absolute path."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if _holds_host_path(value):
            for target in targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                found += [(node.lineno, n.id) for n in names if isinstance(n, ast.Name)]
    return found


def _is_system(node: ast.AST) -> bool:
    """``HostPaths.system``: the host's own ``/``, as a default no test root can change."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "system"
        and getattr(node.value, "id", "") == "HostPaths"
    )


def _names_one(node: ast.AST, system_names: frozenset[str] = frozenset()) -> bool:
    """An absolute path anywhere inside ``node`` (``DaemonJson(Path("/etc/…"))`` too), or
    the host's own paths (``HostPaths.system``, or a global ``system_names`` holding them)."""
    return any(
        _absolute(each)
        or _is_system(each)
        or (isinstance(each, ast.Name) and each.id in system_names)
        for each in ast.walk(node)
    )


def _parameter_defaults(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.AST]]:
    """(parameter, default) of each parameter of ``node`` that has a default."""
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    pairs = list(
        zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
    )
    pairs += [
        (a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
    ]
    return [(a.arg, d) for a, d in pairs]


def default_host_paths(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, ``function(parameter)`` or ``Class.field``) of every default naming an
    absolute path or the host's own paths: a parameter's default, or a class body's field
    (dataclass fields, ``field(default=…)`` and ``default_factory=…`` included)."""
    system = frozenset(
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign) and any(_is_system(e) for e in ast.walk(node.value))
        for target in node.targets
        if isinstance(target, ast.Name)
    )
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [
                (d.lineno, f"{node.name}({name})")
                for name, d in _parameter_defaults(node)
                if _names_one(d, system)
            ]
        elif isinstance(node, ast.ClassDef):
            for each in node.body:
                if isinstance(each, ast.AnnAssign) and each.value is not None:
                    targets, value = [each.target], each.value
                elif isinstance(each, ast.Assign):
                    targets, value = each.targets, each.value
                else:
                    continue
                if _names_one(value, system):
                    found += [
                        (each.lineno, f"{node.name}.{t.id}")
                        for t in targets
                        if isinstance(t, ast.Name)
                    ]
    return sorted(found)


def test_the_scan_finds_every_form() -> None:
    source = (
        "from pathlib import Path\nA = Path('/etc/x')\nB = (Path('/a'), Path('/b'))\n"
        "C = {'x': Path('/etc/y')}\nD: Path = pathlib.Path('/proc')\nE = '/var/lib/x'\n"
        "F = Path('relative')\nG = 'unix:///var/run/docker.sock'\nH = Path('/etc') / 'x'\n"
        "I = ['/usr/bin', '/bin']\ndef f():\n    J = Path('/in/a/function')\n"
    )
    assert module_host_paths(ast.parse(source)) == [
        (2, "A"),
        (3, "B"),
        (4, "C"),
        (5, "D"),
        (6, "E"),
        (9, "H"),
        (10, "I"),
    ]


def test_no_module_global_names_a_host_path() -> None:
    found = {
        (str(path.relative_to(INSTALLER)), name): line
        for path in sorted(INSTALLER.rglob("*.py"))
        if path.name not in HOME or path.parent != INSTALLER
        for line, name in module_host_paths(ast.parse(path.read_text(), str(path)))
    }
    offenders = [
        f"installer/{f}:{line}: {name}"
        for (f, name), line in found.items()
        if (f, name) not in ALLOWED
    ]
    assert offenders == [], (
        "host paths are HostPaths' (installer/hostpaths.py): make each a property there and "
        "pass it down, or allow-list it here with its reason:\n" + "\n".join(offenders)
    )


def test_the_default_scan_finds_every_form() -> None:
    source = (
        "def f(a, b=Path('/proc'), *, c='/etc/x', d=None, e='rel'):\n    pass\n"
        "def g(a=Path('/x'), /, b=1):\n    pass\n"
        "class C:\n    x: Path = Path('/etc/y')\n    y: Box = Box(Path('/etc/z'), False)\n"
        "    z: Path = field(default_factory=lambda: Path('/w'))\n    u = '/v'\n"
        "    t: str = 'unix:///var/run/docker.sock'\n"
        "    def m(self, p=(Path('/a'), Path('b'))):\n        pass\n"
        "lam = lambda q='/q': q\n_SYSTEM = HostPaths.system()\n"
        "class D:\n    h: HostPaths = field(default_factory=HostPaths.system)\n"
        "    d: Path = _SYSTEM.proc\n    e: Path = other.proc\n"
    )
    assert default_host_paths(ast.parse(source)) == [
        (1, "f(b)"),
        (1, "f(c)"),
        (3, "g(a)"),
        (6, "C.x"),
        (7, "C.y"),
        (8, "C.z"),
        (9, "C.u"),
        (11, "m(p)"),
        (16, "D.h"),
        (17, "D.d"),
    ]


def test_no_default_names_a_host_path() -> None:
    """A function or a facts class defaulting to a host path reads the host behind a
    test root's back: callers pass ``HostPaths``' path instead (HostPaths.root's own
    default, the host's ``/``, is the one in hostpaths.py)."""
    offenders = [
        f"installer/{path.relative_to(INSTALLER)}:{line}: {name}"
        for path in sorted(INSTALLER.rglob("*.py"))
        if path != INSTALLER / "hostpaths.py"
        for line, name in default_host_paths(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == [], (
        "a default names a host path: make the parameter or field required and pass "
        "HostPaths' path (installer/hostpaths.py) from the caller:\n" + "\n".join(offenders)
    )


def test_every_allowed_global_still_exists() -> None:
    """An allow-list entry outliving its global would let a new one of that name in."""
    found = {
        (str(path.relative_to(INSTALLER)), name)
        for path in sorted(INSTALLER.rglob("*.py"))
        for _, name in module_host_paths(ast.parse(path.read_text(), str(path)))
    }
    assert sorted(set(ALLOWED) - found) == []


def _every_path(host: object) -> dict[str, list[Path]]:
    """Each path HostPaths names: its properties, and its methods of one name."""
    from installer.hostpaths import CRI_CONFIGS, HostPaths

    found: dict[str, list[Path]] = {}
    for name, member in vars(HostPaths).items():
        if isinstance(member, property):
            value = getattr(host, name)
        elif name in ("cri_config", "init_script"):
            value = [getattr(host, name)(runtime) for runtime in CRI_CONFIGS]
        else:
            continue
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        found[name] = [v for v in values if isinstance(v, Path)]
    return found


def test_every_host_path_lies_under_the_root(tmp_path: Path) -> None:
    """A test root sees only its own files; on ``/`` the names are the system's."""
    from installer.doctor.checks import DoctorPaths
    from installer.hostpaths import HostPaths

    paths = _every_path(HostPaths(tmp_path))
    assert len(paths) > 30 and all(paths.values())
    outside = {n: v for n, v in paths.items() if not all(p.is_relative_to(tmp_path) for p in v)}
    assert outside == {}
    system = _every_path(HostPaths.system())
    assert system["dpkg_admin_dir"] == [Path("/var/lib/dpkg")]
    assert system["cri_config"][0] == Path("/etc/containerd/config.toml")
    # the doctor reads the same paths: under the root it is given
    doctor = DoctorPaths.on(HostPaths(tmp_path))
    for name in ("daemon_json", "config_toml", "proc", "dpkg_admindir", "os_release", "dev"):
        assert getattr(doctor, name).is_relative_to(tmp_path), name
