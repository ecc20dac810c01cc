#!/usr/bin/env python3
"""Prove CUDA compute on every GPU a container sees, through the driver's own libcuda.

Runs inside the builtin verification image (``/usr/local/bin/gpubundle-compute-probe``),
on whatever python3 the target distribution ships (3.6 on Ubuntu 18.04 … 3.14), with the
standard library only: ``ctypes`` talks to the ``libcuda.so.1`` that the NVIDIA runtime
(or a CDI spec) injects. No CUDA toolkit is in the image: the kernel is PTX text that
the driver compiles for the GPU it finds.

For each GPU: create a context, allocate a buffer (``--size``; ``auto`` takes 1 GiB, or
half the free memory when less is free), fill it host→device from a pinned staging
buffer, run a kernel that transforms every 32-bit word, copy it back, check every value,
and report UUID, name, driver and CUDA version, kernel time, host↔device GB/s and
free/total memory. A failure is reported with the driver's own error name
(``CUDA_ERROR_OUT_OF_MEMORY`` …) and what to do.

Exit codes (docs/verification-image.md): 0 every GPU passed; 1 a GPU failed a step or
returned wrong values; 2 bad arguments; 3 no CUDA driver library in the container;
4 the driver sees no GPU (or could not start). ``--json`` prints one JSON document on
stdout; otherwise one line per GPU on stdout, and the reasons on stderr.

Kept compatible with Python 3.6: no dataclasses, no ``from __future__`` imports.
"""

import argparse
import ctypes
import json
import os
import re
import sys
import time
from typing import Any, Dict, Iterable, List, Optional

PROBE_VERSION = 1
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_DRIVER, EXIT_NO_DEVICE = 0, 1, 2, 3, 4
LIBCUDA = "libcuda.so.1"
GIB = 1 << 30
DEFAULT_SIZE = GIB
CHUNK = 64 << 20  # the pinned staging buffer: host memory stays at 64 MiB whatever --size is
WORD = 4
PATTERN_WORDS = 4096  # the input repeats every 16 KiB, so expected bytes are built by repetition
MUL, ADD = 2654435761, 0x9E3779B9  # y = x * MUL + ADD (mod 2**32): no word maps to itself
THREADS = 256
CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_JIT_ERROR_LOG_BUFFER = 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6

# The oldest PTX ISA and target that every driver this tool meets can compile (CUDA 9.0,
# Maxwell): a newer GPU runs it too, because the driver compiles PTX for the GPU at hand.
PTX_KERNEL = r"""
.version 6.0
.target sm_50
.address_size 64

.visible .entry gpubundle_transform(
    .param .u64 data,
    .param .u64 count,
    .param .u32 mul,
    .param .u32 add
)
{
    .reg .pred done;
    .reg .b32 r<7>;
    .reg .b64 rd<8>;

    ld.param.u64 rd1, [data];
    ld.param.u64 rd2, [count];
    ld.param.u32 r1, [mul];
    ld.param.u32 r2, [add];
    cvta.to.global.u64 rd1, rd1;
    mov.u32 r3, %ctaid.x;
    mov.u32 r4, %ntid.x;
    mov.u32 r5, %tid.x;
    mul.wide.u32 rd3, r3, r4;
    cvt.u64.u32 rd4, r5;
    add.u64 rd3, rd3, rd4;
    mov.u32 r6, %nctaid.x;
    mul.wide.u32 rd5, r6, r4;
LOOP:
    setp.ge.u64 done, rd3, rd2;
    @done bra DONE;
    shl.b64 rd6, rd3, 2;
    add.u64 rd7, rd1, rd6;
    ld.global.u32 r3, [rd7];
    mad.lo.u32 r3, r3, r1, r2;
    st.global.u32 [rd7], r3;
    add.u64 rd3, rd3, rd5;
    bra LOOP;
DONE:
    ret;
}
"""
KERNEL_NAME = b"gpubundle_transform"

# What to do, by the driver's error name; anything else gets the generic advice.
ADVICE = {
    "CUDA_ERROR_NO_DEVICE": "the container sees no GPU: give it one (--gpus all, "
    "--device nvidia.com/gpu=all, or the runtime nvidia) and run the installer's doctor on the host",
    "CUDA_ERROR_OUT_OF_MEMORY": "the GPU has less free memory than asked: pass a smaller "
    "--size (or auto), or stop what holds its memory (nvidia-smi lists it)",
    "CUDA_ERROR_UNSUPPORTED_PTX_VERSION": "the driver is older than this PTX: update the "
    "host's NVIDIA driver",
    "CUDA_ERROR_INVALID_PTX": "the driver could not compile the PTX: update the host's "
    "NVIDIA driver",
    "CUDA_ERROR_JIT_COMPILER_NOT_FOUND": "libnvidia-ptxjitcompiler.so.1 was not injected: "
    "the container needs NVIDIA_DRIVER_CAPABILITIES with compute (or a CDI spec that "
    "lists the compute libraries)",
    "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH": "the libcuda in the container does not match the "
    "host's kernel driver: remove CUDA driver libraries from the image",
    "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE": "a CUDA forward-compatibility libcuda "
    "in the image does not support this GPU: remove it from the image",
    "CUDA_ERROR_INSUFFICIENT_DRIVER": "the host's NVIDIA kernel driver is older than the "
    "libcuda in the container: update the driver or remove CUDA compat libraries",
    "CUDA_ERROR_NOT_INITIALIZED": "the driver did not initialise: check dmesg and "
    "`nvidia-smi` on the host",
    "CUDA_ERROR_UNKNOWN": "the driver failed without a reason: check dmesg (Xid errors) "
    "and `nvidia-smi` on the host",
}
GENERIC_ADVICE = "check `nvidia-smi` and dmesg on the host, then the installer's doctor"


class ProbeError(Exception):
    """A driver call failed: ``name`` is the driver's error name (or ours)."""

    def __init__(self, step: str, name: str, detail: str = "") -> None:
        Exception.__init__(self, f"{step}: {name}")
        self.step = step
        self.name = name
        self.detail = detail

    def advice(self) -> str:
        return ADVICE.get(self.name, GENERIC_ADVICE)


# -- pure logic (unit-tested) ---------------------------------------------------------

_SIZE = re.compile(r"^(\d+)([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> Optional[int]:
    """``auto``, or bytes with an optional binary unit: 512M, 1G, 1GiB, 4096 → int or None."""
    if text.strip().lower() == "auto":
        return None
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r} (auto, or a number with K, M, G or T)")
    count = int(match.group(1))
    unit = (match.group(2) or "").upper()[:1]
    size = count * _UNITS[unit]
    if size < PATTERN_WORDS * WORD:
        raise ValueError(f"size {text!r} is below the minimum of {PATTERN_WORDS * WORD} bytes")
    return size


def buffer_bytes(requested: Optional[int], free: int) -> int:
    """The buffer to test: what was asked (even when more than is free: then the driver's
    out-of-memory answer is the finding), or for ``auto`` 1 GiB, or half of ``free`` when
    less than 2 GiB is free. A whole number of pattern periods either way."""
    period = PATTERN_WORDS * WORD
    if requested is None:
        requested = min(DEFAULT_SIZE, max(period, free // 2))
    return max(period, requested - requested % period)


def transform_word(value: int) -> int:
    return (value * MUL + ADD) & 0xFFFFFFFF


def pattern_bytes() -> bytes:
    """One period of the input: word i holds i * 0x01000193 + 1 (distinct, never 0)."""
    words = [((i * 0x01000193) + 1) & 0xFFFFFFFF for i in range(PATTERN_WORDS)]
    return words_to_bytes(words)


def expected_bytes(pattern: bytes) -> bytes:
    return words_to_bytes(transform_word(w) for w in bytes_to_words(pattern))


def words_to_bytes(words: Iterable[int]) -> bytes:
    return b"".join(int(w).to_bytes(WORD, "little") for w in words)


def bytes_to_words(data: bytes) -> List[int]:
    return [int.from_bytes(data[i : i + WORD], "little") for i in range(0, len(data), WORD)]


def first_mismatch(got: bytes, want_period: bytes, offset: int) -> Optional[int]:
    """The byte offset (absolute, from ``offset``) of the first word that differs from the
    periodic expectation, or None when ``got`` matches it."""
    period = len(want_period)
    start = offset % period
    reps = (start + len(got)) // period + 2
    want = (want_period * reps)[start : start + len(got)]
    if got == want:
        return None
    for i in range(0, len(got), WORD):
        if got[i : i + WORD] != want[i : i + WORD]:
            return offset + i
    return None  # pragma: no cover - equal lengths differ somewhere above


def format_uuid(raw: Iterable[int]) -> str:
    """The 16 bytes of cuDeviceGetUuid as nvidia-smi prints them: GPU-8-4-4-4-12 hex."""
    h = bytes(raw).hex()
    return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def version_text(encoded: int) -> str:
    """cuDriverGetVersion's 12080 → "12.8"."""
    return f"{encoded // 1000}.{(encoded % 1000) // 10}"


def gbps(nbytes: int, seconds: float) -> Optional[float]:
    return round(nbytes / seconds / 1e9, 2) if seconds > 0 else None


def summary_line(gpu: Dict[str, Any]) -> str:
    if gpu.get("passed"):
        return (
            "GPU {index}: {name} ({uuid}): compute ok: {mib} MiB checked, kernel {kms} ms, "
            "H2D {h2d} GB/s, D2H {d2h} GB/s, free {free} of {total} MiB"
        ).format(
            index=gpu["index"], name=gpu["name"], uuid=gpu["uuid"],
            mib=gpu["buffer_bytes"] >> 20, kms=gpu["kernel_ms"], h2d=gpu["h2d_gbps"],
            d2h=gpu["d2h_gbps"], free=gpu["free_bytes"] >> 20, total=gpu["total_bytes"] >> 20,
        )  # fmt: skip
    return "GPU {}: {} ({}): compute FAILED at {}: {}: {}".format(
        gpu["index"], gpu.get("name", "?"), gpu.get("uuid", "?"), gpu["failed_step"],
        gpu["error"], gpu["advice"],
    )  # fmt: skip


def exit_code(report: Dict[str, Any]) -> int:
    if report.get("error") == "no-driver":
        return EXIT_NO_DRIVER
    if report.get("error"):
        return EXIT_NO_DEVICE
    gpus = report.get("gpus", [])
    return EXIT_OK if gpus and all(g.get("passed") for g in gpus) else EXIT_FAILED


# -- the driver (effects) -------------------------------------------------------------


class Driver:
    """The CUDA driver API through ctypes; every call checked, failures as ProbeError."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.lib.cuGetErrorName.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]

    def error_name(self, code: int) -> str:
        name = ctypes.c_char_p()
        if self.lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return name.value.decode()
        return f"CUDA error {code}"

    def call(self, step: str, func: str, *args: Any) -> None:
        code = getattr(self.lib, func)(*args)
        if code != 0:
            raise ProbeError(step, self.error_name(code))


def load_driver() -> Driver:
    return Driver(ctypes.CDLL(LIBCUDA))


def probe_device(drv: Driver, index: int, size_request: Optional[int]) -> Dict[str, Any]:
    """Run the whole check on one GPU; returns its report dict (never raises ProbeError)."""
    c = ctypes
    gpu: Dict[str, Any] = {"index": index, "passed": False}
    ctx = c.c_void_p()
    module = c.c_void_p()
    dptr = c.c_uint64(0)
    host = c.c_void_p()
    step = "device"
    try:
        dev = c.c_int()
        drv.call("cuDeviceGet", "cuDeviceGet", c.byref(dev), index)
        name = c.create_string_buffer(256)
        drv.call("cuDeviceGetName", "cuDeviceGetName", name, 256, dev)
        gpu["name"] = name.value.decode(errors="replace")
        uuid = (c.c_ubyte * 16)()
        drv.call("cuDeviceGetUuid", "cuDeviceGetUuid", uuid, dev)
        gpu["uuid"] = format_uuid(uuid)
        major, minor, sms = c.c_int(), c.c_int(), c.c_int()
        drv.call(
            "attributes",
            "cuDeviceGetAttribute",
            c.byref(major),
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
            dev,
        )
        drv.call(
            "attributes",
            "cuDeviceGetAttribute",
            c.byref(minor),
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
            dev,
        )
        drv.call(
            "attributes",
            "cuDeviceGetAttribute",
            c.byref(sms),
            CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            dev,
        )
        gpu["compute_capability"] = f"{major.value}.{minor.value}"
        step = "context"
        drv.call(step, "cuCtxCreate_v2", c.byref(ctx), 0, dev)
        free, total = c.c_size_t(), c.c_size_t()
        drv.call("memory", "cuMemGetInfo_v2", c.byref(free), c.byref(total))
        gpu["free_bytes"], gpu["total_bytes"] = free.value, total.value
        nbytes = buffer_bytes(size_request, free.value)
        gpu["buffer_bytes"] = nbytes
        step = "compile"
        log = c.create_string_buffer(4096)
        options = (c.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        values = (c.c_void_p * 2)(c.cast(log, c.c_void_p), c.c_void_p(4096))
        ptx = c.create_string_buffer(PTX_KERNEL.encode())
        try:
            drv.call(step, "cuModuleLoadDataEx", c.byref(module), ptx, 2, options, values)
        except ProbeError as exc:
            exc.detail = log.value.decode(errors="replace").strip()
            raise
        func = c.c_void_p()
        drv.call(step, "cuModuleGetFunction", c.byref(func), module, KERNEL_NAME)
        step = "allocate"
        drv.call(step, "cuMemAlloc_v2", c.byref(dptr), c.c_size_t(nbytes))
        drv.call(step, "cuMemAllocHost_v2", c.byref(host), c.c_size_t(CHUNK))
        pattern = pattern_bytes()
        want = expected_bytes(pattern)
        chunk = min(CHUNK, nbytes)
        c.memmove(host, pattern * (chunk // len(pattern)), chunk)
        step = "copy host to device"
        started = time.perf_counter()
        for offset in range(0, nbytes, chunk):
            part = min(chunk, nbytes - offset)
            drv.call(
                step, "cuMemcpyHtoD_v2", c.c_uint64(dptr.value + offset), host, c.c_size_t(part)
            )
        h2d_seconds = time.perf_counter() - started
        step = "kernel"
        words = nbytes // WORD
        args = [c.c_uint64(dptr.value), c.c_uint64(words), c.c_uint32(MUL), c.c_uint32(ADD)]
        params = (c.c_void_p * len(args))(*[c.cast(c.pointer(a), c.c_void_p) for a in args])
        blocks = max(1, min((words + THREADS - 1) // THREADS, sms.value * 32))
        start_ev, end_ev = c.c_void_p(), c.c_void_p()
        drv.call(step, "cuEventCreate", c.byref(start_ev), 0)
        drv.call(step, "cuEventCreate", c.byref(end_ev), 0)
        drv.call(step, "cuEventRecord", start_ev, None)
        drv.call(step, "cuLaunchKernel", func, blocks, 1, 1, THREADS, 1, 1, 0, None, params, None)
        drv.call(step, "cuEventRecord", end_ev, None)
        drv.call(step, "cuEventSynchronize", end_ev)
        elapsed = c.c_float()
        drv.call(step, "cuEventElapsedTime", c.byref(elapsed), start_ev, end_ev)
        gpu["kernel_ms"] = round(elapsed.value, 3)
        step = "copy device to host"
        bad = None
        d2h_seconds = 0.0
        for offset in range(0, nbytes, chunk):
            part = min(chunk, nbytes - offset)
            started = time.perf_counter()
            drv.call(
                step, "cuMemcpyDtoH_v2", host, c.c_uint64(dptr.value + offset), c.c_size_t(part)
            )
            d2h_seconds += time.perf_counter() - started
            bad = first_mismatch(c.string_at(host, part), want, offset)
            if bad is not None:
                break
        gpu["h2d_gbps"], gpu["d2h_gbps"] = gbps(nbytes, h2d_seconds), gbps(nbytes, d2h_seconds)
        if bad is not None:
            raise ProbeError("check", "WRONG_VALUES", f"first wrong word at byte {bad}")
        gpu["passed"] = True
    except ProbeError as exc:
        gpu["failed_step"] = exc.step
        gpu["error"] = exc.name
        gpu["advice"] = (
            "the GPU computed wrong values: check dmesg for Xid errors and run "
            "`nvidia-smi -q -d ECC`"
            if exc.name == "WRONG_VALUES"
            else exc.advice()
        )
        if exc.detail:
            gpu["detail"] = exc.detail
    finally:
        if host.value:
            drv.lib.cuMemFreeHost(host)
        if dptr.value:
            drv.lib.cuMemFree_v2(dptr)
        if module.value:
            drv.lib.cuModuleUnload(module)
        if ctx.value:
            drv.lib.cuCtxDestroy_v2(ctx)
    return gpu


def run_probe(size_request: Optional[int]) -> Dict[str, Any]:
    report: Dict[str, Any] = {"probe_version": PROBE_VERSION, "gpus": []}
    try:
        drv = load_driver()
    except OSError as exc:
        report["error"] = "no-driver"
        report["message"] = (
            f"{LIBCUDA} is not in this container ({exc}): the NVIDIA driver's CUDA library was not "
            "injected. Run the container with the NVIDIA runtime or a CDI device "
            "(--gpus all, --device nvidia.com/gpu=all) and NVIDIA_DRIVER_CAPABILITIES "
            "including compute; on the host, the installer's doctor says what is missing"
        )
        return report
    try:
        drv.call("cuInit", "cuInit", 0)
        version = ctypes.c_int()
        drv.call("cuDriverGetVersion", "cuDriverGetVersion", ctypes.byref(version))
        report["cuda_driver_version"] = version_text(version.value)
        count = ctypes.c_int()
        drv.call("cuDeviceGetCount", "cuDeviceGetCount", ctypes.byref(count))
    except ProbeError as exc:
        report["error"] = exc.name
        report["message"] = f"{exc.step} failed with {exc.name}: {exc.advice()}"
        return report
    if count.value == 0:
        report["error"] = "CUDA_ERROR_NO_DEVICE"
        report["message"] = ADVICE["CUDA_ERROR_NO_DEVICE"]
        return report
    report["driver_version"] = kernel_driver_version()
    for index in range(count.value):
        report["gpus"].append(probe_device(drv, index, size_request))
    return report


def kernel_driver_version() -> Optional[str]:
    """The kernel module's version, as nvidia-smi shows it ("580.95.05"), or None."""
    try:
        with open("/proc/driver/nvidia/version") as handle:
            match = re.search(r"Kernel Module(?: for [^ ]+)?\s+(\d+\.\d+(?:\.\d+)?)", handle.read())
    except OSError:
        return None
    return match.group(1) if match else None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gpubundle-compute-probe",
        description="Run a CUDA kernel on every visible GPU through libcuda.so.1 and check the result.",
    )
    parser.add_argument("--size", default=os.environ.get("GPUBUNDLE_PROBE_SIZE", "auto"),
                        help="buffer per GPU: auto (1 GiB, or half the free memory), or e.g. 512M, 4G")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    try:
        size_request = parse_size(args.size)
    except ValueError as exc:
        parser.error(str(exc))
    report = run_probe(size_request)
    code = exit_code(report)
    report["exit_code"] = code
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for gpu in report["gpus"]:
            print(summary_line(gpu))
    if report.get("message"):
        sys.stderr.write("gpubundle-compute-probe: {}\n".format(report["message"]))
    for gpu in report["gpus"]:
        if not gpu.get("passed"):
            sys.stderr.write(f"gpubundle-compute-probe: {summary_line(gpu)}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
