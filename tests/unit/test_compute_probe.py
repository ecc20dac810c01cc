"""The compute probe (installer/compute_probe.py): its pure parts, and its whole data path
against a fake libcuda.so.1 built from tests/support/fake_libcuda.c."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from installer import compute_probe as probe
from tests.support.fakecuda import build_fake_libcuda, run_probe

MIB = 1 << 20


@pytest.fixture(scope="module")
def fake_cuda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_libcuda(tmp_path_factory.mktemp("fakecuda")).parent


@pytest.mark.parametrize(
    ("text", "size"),
    [("auto", None), ("AUTO", None), ("512M", 512 * MIB), ("1GiB", 1 << 30), ("2g", 2 << 30),
     ("16384", 16384), ("1T", 1 << 40), ("64KiB", 64 << 10)],
)  # fmt: skip
def test_sizes_are_parsed(text: str, size: int | None) -> None:
    assert probe.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "3x", "-1G", "1.5G", "4096", "G"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        probe.parse_size(text)


def test_auto_size_is_one_gib_or_half_the_free_memory() -> None:
    period = probe.PATTERN_WORDS * probe.WORD
    assert probe.buffer_bytes(None, 80 << 30) == 1 << 30
    assert probe.buffer_bytes(None, 1 << 30) == 512 * MIB
    assert probe.buffer_bytes(None, 0) == period
    # An explicit size is kept even beyond the free memory: out-of-memory is the finding.
    assert probe.buffer_bytes(200 << 30, 1 << 30) == 200 << 30
    assert probe.buffer_bytes(period * 3 + 5, 1 << 30) == period * 3


def test_the_transform_changes_every_word_of_the_pattern() -> None:
    pattern = probe.pattern_bytes()
    words = probe.bytes_to_words(pattern)
    assert len(words) == probe.PATTERN_WORDS and len(set(words)) == len(words)
    assert all(probe.transform_word(w) != w for w in words)
    expected = probe.bytes_to_words(probe.expected_bytes(pattern))
    assert expected == [(w * probe.MUL + probe.ADD) % 2**32 for w in words]


def test_a_wrong_word_is_found_at_its_absolute_offset() -> None:
    want = probe.expected_bytes(probe.pattern_bytes())
    period = len(want)
    good = want * 3
    assert probe.first_mismatch(good, want, 0) is None
    assert probe.first_mismatch(good, want, 7 * period) is None
    bad = bytearray(good)
    bad[period + 9] ^= 0xFF
    assert probe.first_mismatch(bytes(bad), want, 4 * period) == 4 * period + period + 8


def test_uuid_and_version_are_printed_as_nvidia_smi_does() -> None:
    raw = bytes.fromhex("ba793fbf0ad73ef2260691ae096064e1")
    assert probe.format_uuid(raw) == "GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1"
    assert probe.version_text(13000) == "13.0"
    assert probe.version_text(12080) == "12.8"


def test_every_ptx_register_used_is_declared() -> None:
    ptx = probe.PTX_KERNEL
    declared = {name: int(count) for name, count in re.findall(r"\.reg \.\w+ (\w+?)<(\d+)>;", ptx)}
    assert declared == {"r": 7, "rd": 8}
    for name, index in re.findall(r"\b(rd|r)(\d+)\b", ptx):
        assert int(index) < declared[name], f"{name}{index} is not declared"
    assert f".entry {probe.KERNEL_NAME.decode()}(" in ptx
    params = re.findall(r"\.param \.(u64|u32) (\w+)", ptx)
    assert params == [("u64", "data"), ("u64", "count"), ("u32", "mul"), ("u32", "add")]


def test_exit_codes_follow_the_report() -> None:
    assert probe.exit_code({"error": "no-driver"}) == probe.EXIT_NO_DRIVER
    assert probe.exit_code({"error": "CUDA_ERROR_NO_DEVICE"}) == probe.EXIT_NO_DEVICE
    assert probe.exit_code({"gpus": []}) == probe.EXIT_FAILED
    assert probe.exit_code({"gpus": [{"passed": True}, {"passed": False}]}) == probe.EXIT_FAILED
    assert probe.exit_code({"gpus": [{"passed": True}]}) == probe.EXIT_OK


# --- the whole probe against the fake driver ------------------------------------------


def test_without_libcuda_the_probe_names_the_missing_driver(tmp_path: Path) -> None:
    code, doc, stderr = run_probe(tmp_path, "--json")
    assert code == probe.EXIT_NO_DRIVER
    assert doc is not None and doc["error"] == "no-driver"
    assert "libcuda.so.1" in doc["message"] and "libcuda.so.1" in stderr


def test_every_gpu_passes_with_figures(fake_cuda: Path) -> None:
    code, doc, _ = run_probe(fake_cuda, "--json", "--size", "160M", devices="2")
    assert code == 0, doc
    assert doc is not None and doc["cuda_driver_version"] == "13.0"
    uuids = [g["uuid"] for g in doc["gpus"]]
    assert uuids == [
        "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f",
        "GPU-10111213-1415-1617-1819-1a1b1c1d1e1f",
    ]
    for gpu in doc["gpus"]:
        assert gpu["passed"] and gpu["buffer_bytes"] == 160 * MIB
        assert gpu["name"].startswith("Fake GPU") and gpu["compute_capability"] == "9.0"
        assert gpu["kernel_ms"] == 0.5 and gpu["h2d_gbps"] > 0 and gpu["d2h_gbps"] > 0
        assert gpu["total_bytes"] == 1 << 30


def test_human_output_is_one_line_per_gpu(fake_cuda: Path) -> None:
    code, _, _ = run_probe(fake_cuda, "--size", "64M")
    assert code == 0


@pytest.mark.parametrize(
    ("fake", "step", "error"),
    [
        ({"total": str(64 * MIB)}, "allocate", "CUDA_ERROR_OUT_OF_MEMORY"),
        ({"ptx_error": "222"}, "compile", "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"),
        ({"corrupt": str(70 * MIB // 4 + 3)}, "check", "WRONG_VALUES"),
        ({"skip_tail": "1"}, "check", "WRONG_VALUES"),
    ],
)
def test_a_failure_is_reported_with_the_drivers_error_name(
    fake_cuda: Path, fake: dict[str, str], step: str, error: str
) -> None:
    code, doc, stderr = run_probe(fake_cuda, "--json", "--size", "128M", **fake)
    assert code == probe.EXIT_FAILED, doc
    assert doc is not None
    [gpu] = doc["gpus"]
    assert not gpu["passed"] and gpu["failed_step"] == step and gpu["error"] == error
    assert gpu["advice"] and error in stderr
    if error == "WRONG_VALUES" and "corrupt" in fake:
        assert gpu["detail"] == f"first wrong word at byte {(70 * MIB // 4 + 3) * 4}"
    if "ptx_error" in fake:
        assert gpu["detail"] == "ptxas fatal: fake failure"


def test_out_of_memory_says_to_ask_for_less(fake_cuda: Path) -> None:
    _, doc, _ = run_probe(fake_cuda, "--json", "--size", "200G")
    assert doc is not None
    [gpu] = doc["gpus"]
    assert gpu["error"] == "CUDA_ERROR_OUT_OF_MEMORY" and "--size" in gpu["advice"]
    assert gpu["buffer_bytes"] == 200 << 30


def test_no_device_is_its_own_exit_code(fake_cuda: Path) -> None:
    code, doc, _ = run_probe(fake_cuda, "--json", devices="0")
    assert code == probe.EXIT_NO_DEVICE
    assert doc is not None and doc["error"] == "CUDA_ERROR_NO_DEVICE"


def test_bad_arguments_exit_2_before_touching_the_driver(tmp_path: Path) -> None:
    code, _, stderr = run_probe(tmp_path, "--size", "lots")
    assert code == probe.EXIT_USAGE and "not a size" in stderr
