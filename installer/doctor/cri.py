"""containerd and CRI-O checks (``containerd.*``, ``crio.*``): installed, answering, a
configuration the engine reads, the nvidia runtime in the table the engine reads it from
(containerd's differs by config version), its binary there and executable, no dangling
default runtime, the daemon started after its configuration last changed, and CDI
(containerd's ``enable_cdi``). Pure: facts from ``installer.doctor.crifacts`` in, findings
out; every fix runs on the air-gapped host as printed."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence

from installer import invocation, runtime_toml
from installer.doctor.checks import Finding, failure, ok, skipped, warning
from installer.doctor.criconfig import NVIDIA, defined
from installer.doctor.crifacts import CriEngineFacts
from installer.doctor.engine import BUNDLED_DEBS, CDI_GENERATE, CLOCK_SLACK_S

TOOLKIT_DEB = f"dpkg -i {BUNDLED_DEBS}/nvidia-container-toolkit-base_*.deb  # the bundle's copy"


def _service(f: CriEngineFacts, verb: str) -> str:
    """The command that starts or restarts the engine the way this host runs it."""
    if f.init == "systemctl":
        return f"systemctl {verb} {f.name}"
    if f.init == "service":
        return f"service {f.name} {verb}"
    argv = shlex.join(f.argv or (f.name, "--config", str(f.config_path)))
    start = f"nohup {argv} >>/var/log/{f.name}.log 2>&1 &  # no init system runs {f.name} here"
    return f"kill {f.pid} && {start}" if f.pid and verb == "restart" else start


def _configure(f: CriEngineFacts) -> list[str]:
    argv = runtime_toml.configure_argv("nvidia-ctk", f.name, f.config_path)
    return [shlex.join(argv), _service(f, "restart")]


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def check_installed(f: CriEngineFacts) -> Finding:
    cid = f"{f.name}.installed"
    if not f.installed:
        return failure(
            cid,
            f"{f.label} is not installed",
            [f"no {f.name} on PATH"],
            [
                f"dpkg -i {f.packages[0] if f.packages else f.name}_*.deb  # {f.label}'s "
                "package, carried in from the distribution's media",
                f"then: {invocation.rerun_install()} --runtime {f.name}",
                f"or: {invocation.rerun_install()} --runtime docker",
            ],
        )
    return ok(cid, f"{f.label} is installed", [f"version {f.version}"] if f.version else [])


def check_running(f: CriEngineFacts) -> Finding:
    cid = f"{f.name}.running"
    if not f.installed:
        return skipped(cid, f"{f.label} is not installed")
    evidence = [f"`{f.probe}`"]
    if f.running:
        return ok(cid, f"{f.label} answers", [*evidence, f"server version {f.version}"])
    if f.problem:
        return failure(
            cid, f"{f.label} does not answer", [*evidence, f.problem], [_service(f, "restart")]
        )
    return failure(
        cid, f"{f.label} is not running", [*evidence, "no answer"], [_service(f, "start")]
    )


def check_config(f: CriEngineFacts) -> Finding:
    cid = f"{f.name}.config"
    files = ", ".join(map(str, f.config_files)) or str(f.config_path)
    if f.config_error:
        where = (
            f.load_check
            or f"python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], \"rb\"))' "
            f"{f.config_path}"
        )
        return failure(
            cid,
            f"{files} cannot be read: {f.label} will refuse to start",
            [f.config_error],
            [f"{where}  # shows where it breaks", f"edit {f.config_path}"],
        )
    if f.loaded_error:
        return failure(
            cid,
            f"{f.label} refuses {f.config_path}: it will not start with it",
            [f"`{f.load_check}`: {f.loaded_error}"],
            [f"{f.load_check}  # shows why", f"edit {f.config_path}"],
        )
    if f.config is None:
        return ok(cid, f"{f.config_path} does not exist ({f.label}'s defaults)")
    return ok(
        cid, f"{files}: valid TOML", [f"config version {f.config.version}"] * bool(f.config.version)
    )


def check_nvidia_runtime(f: CriEngineFacts) -> Finding:
    cid = f"{f.name}.nvidia-runtime"
    config, path = f.config, f.config_path
    if f.config_error:
        return skipped(cid, f"{path} cannot be read (see {f.name}.config)")
    if config is None:
        return failure(
            cid, f"{path} does not exist: {f.label} has no nvidia runtime", [], _configure(f)
        )
    table = f"[{config.table}.{NVIDIA}]"
    evidence = [f"{path}: {config.table} = {sorted(config.runtimes)}"]
    if not config.nvidia and config.misplaced:
        return failure(
            cid,
            f"the nvidia runtime is in a table a version {config.version} config does not read: "
            f"{f.label} ignores it",
            [*evidence, *(f"{path}: [{m}]" for m in config.misplaced)],
            _version_fix(f, config.misplaced_for, config.version_set, config.misplaced[0]),
        )
    if not config.nvidia:
        return failure(cid, f"no nvidia runtime in {path}", evidence, _configure(f))
    evidence.append(f"{table} {config.binary_key} = {config.binary or '(unset)'}")
    if not config.binary:
        return failure(
            cid, f"the nvidia runtime in {path} names no binary", evidence, _configure(f)
        )
    if config.cri_disabled:
        return failure(
            cid,
            f"{path} switches the CRI plugin off: {f.label} loads no runtime from it",
            [*evidence, f"disabled_plugins contains {config.cri_disabled!r}"],
            [
                f'remove "{config.cri_disabled}" from disabled_plugins in {path}',
                _service(f, "restart"),
            ],
        )
    if f.loaded is not None and not f.loaded.nvidia:
        return failure(
            cid,
            f"{f.label} does not load the nvidia runtime from {path}",
            [*evidence, f"`{f.load_check}` shows no {table}"],
            _configure(f),
        )
    if f.loaded is not None:
        evidence.append(f"`{f.load_check}` shows it")
    return ok(cid, f"nvidia runtime configured in {path}", evidence)


def _version_fix(f: CriEngineFacts, version: int, version_set: bool, misplaced: str) -> list[str]:
    path = f.config_path
    edit = (
        f"sed -i 's/^version *=.*/version = {version}/' {path}"
        if version_set
        else f"sed -i '1i version = {version}' {path}"
    )
    return [
        f"{edit}  # the version [{misplaced}] is written for, where the file's other "
        "plugins tables are written for it too",
        _service(f, "restart"),
        f"or: delete [{misplaced}] (and its sub-tables) from {path}, then: {_configure(f)[0]}",
    ]


def check_runtime_binary(f: CriEngineFacts) -> Finding:
    cid = f"{f.name}.runtime-binary"
    config = f.config
    if config is None or not config.nvidia or not config.binary:
        return skipped(cid, "no nvidia runtime binary is configured")
    evidence = [f"{f.config_path}: {config.binary_key} = {config.binary}"]
    if not f.binary:
        return failure(
            cid,
            f"the nvidia runtime's binary {config.binary} does not exist: "
            "every container of the nvidia runtime fails to start",
            evidence,
            [TOOLKIT_DEB, f"or: {_configure(f)[0]}"],
        )
    if not f.binary_executable:
        return failure(
            cid,
            f"the nvidia runtime's binary {f.binary} is not an executable file",
            evidence,
            ["dpkg -V nvidia-container-toolkit-base  # shows what changed", TOOLKIT_DEB],
        )
    return ok(cid, f"the nvidia runtime's binary {f.binary} is executable", evidence)


def check_restarted(f: CriEngineFacts) -> Finding:
    """The engine reads its configuration when it starts: a later change is not live."""
    cid = f"{f.name}.restarted"
    if not f.running:
        return skipped(cid, f"{f.label} is not running")
    if f.started_at is None:
        return skipped(cid, f"cannot tell when {f.label} started (no pid or /proc not readable)")
    if f.config_mtime is None:
        return skipped(cid, f"{f.config_path} does not exist")
    evidence = [
        f"{f.name} (pid {f.pid}) started {_when(f.started_at)}",
        f"{', '.join(map(str, f.config_files))} changed {_when(f.config_mtime)}",
    ]
    if f.config_mtime <= f.started_at + CLOCK_SLACK_S:  # /proc's boot time is whole seconds
        return ok(cid, f"{f.label} started after its configuration last changed", evidence)
    if f.config is not None and f.config.nvidia:
        return failure(
            cid,
            f"{f.config_path} changed after {f.label} started: the running daemon may not "
            "have the nvidia runtime",
            evidence,
            [_service(f, "restart")],
        )
    return warning(
        cid,
        f"{f.config_path} changed after {f.label} started: the daemon runs the old settings",
        evidence,
        [_service(f, "restart")],
    )


def check_default_runtime(f: CriEngineFacts) -> Finding:
    cid = f"{f.name}.default-runtime"
    config = f.config
    if config is None:
        return skipped(cid, f"no configuration of {f.label} to read")
    name = config.default_runtime
    if not name:
        return ok(cid, f"no default runtime set ({f.label}'s own)")
    evidence = [f"{f.config_path}: {config.default_key} = {name!r}"]
    fix = [
        f"remove {config.default_key.rsplit('.', 1)[-1]} from {f.config_path}",
        _service(f, "restart"),
    ]
    if not defined(config, name):
        return failure(
            cid,
            f"the default runtime {name!r} is not defined: {f.label} cannot run containers",
            evidence,
            fix,
        )
    if name == NVIDIA and config.binary and not f.binary:
        return failure(
            cid,
            f"the default runtime {name!r} names a binary that does not exist: "
            "every container fails to start",
            [*evidence, f"{config.binary_key} = {config.binary}"],
            [TOOLKIT_DEB, *fix],
        )
    return ok(cid, f"the default runtime {name!r} is defined", evidence)


def check_cdi(f: CriEngineFacts) -> Finding:
    cid = f"{f.name}.cdi"
    config = f.config
    specs = [f"NVIDIA CDI spec: {s}" for s in f.cdi_specs]
    if not config or not config.cdi_key:
        if f.cdi_specs:
            return ok(cid, f"{f.label} reads CDI specs without a switch", specs)
        return skipped(cid, f"no NVIDIA CDI spec ({f.label} reads them without a switch)")
    evidence = [f"{f.config_path}: {config.cdi_key} = {config.enable_cdi}"] * (
        config.enable_cdi is not None
    )
    loaded = f.loaded.enable_cdi if f.loaded is not None else None
    if config.enable_cdi and f.loaded is not None and not loaded:
        return warning(
            cid,
            f"{config.cdi_key} is set but this {f.label} does not know it (CDI needs "
            f"containerd 1.7 or newer): CDI devices will not resolve",
            [*evidence, f"`{f.load_check}` shows no enable_cdi = true", *specs],
            [
                "use the nvidia runtime (runtime_handler / runtimeClassName nvidia) instead of "
                "CDI devices, or a containerd 1.7 or newer"
            ],
        )
    if not (config.enable_cdi or loaded):
        return skipped(
            cid, f"CDI is not enabled in {f.label} (optional: the nvidia runtime works without it)"
        )
    if not f.cdi_specs:
        return warning(
            cid,
            f"CDI is enabled in {f.label} but no NVIDIA CDI spec exists: "
            "nvidia.com/gpu devices will not resolve",
            evidence,
            [CDI_GENERATE, "nvidia-ctk cdi list"],
        )
    return ok(
        cid, f"CDI is enabled in {f.label} and an NVIDIA CDI spec exists", [*evidence, *specs]
    )


CHECKS: tuple[Callable[[CriEngineFacts], Finding], ...] = (
    check_installed,
    check_running,
    check_config,
    check_nvidia_runtime,
    check_runtime_binary,
    check_restarted,
    check_default_runtime,
    check_cdi,
)
CHECK_NAMES = (
    "installed",
    "running",
    "config",
    "nvidia-runtime",
    "runtime-binary",
    "restarted",
    "default-runtime",
    "cdi",
)


def check_engine(f: CriEngineFacts, not_checked: str = "") -> list[Finding]:
    """Every check of one engine; each skipped with ``not_checked`` when it is not one the
    doctor checks on this host, and all but the first when it is not installed."""
    if not_checked:
        return [skipped(f"{f.name}.{name}", not_checked) for name in CHECK_NAMES]
    if not f.installed:
        absent = f"{f.label} is not installed"
        return [check_installed(f), *(skipped(f"{f.name}.{n}", absent) for n in CHECK_NAMES[1:])]
    return [check(f) for check in CHECKS]


def check_ids(names: Sequence[str]) -> list[str]:
    return [f"{n}.{c}" for n in names for c in CHECK_NAMES]
