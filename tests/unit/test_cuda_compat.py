"""NVIDIA_REQUIRE_CUDA read the way libnvidia-container's dsl_evaluate reads it."""

from __future__ import annotations

import pytest

from installer.cuda_compat import (
    Condition,
    check_image_against_driver,
    compare_versions,
    cuda_for_driver,
    driver_for_cuda,
    parse_require_cuda,
)
from installer.errors import GpubundleError

# The value nvidia/cuda:12.4.1-base-ubuntu22.04 carries (abridged to three brands).
CUDA_12_4 = (
    "cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=nvidia,driver>=470,driver<471 "
    "brand=tesla,driver>=535,driver<536 brand=geforce,driver>=535,driver<536"
)


def test_parse_alternatives_and_conditions() -> None:
    req = parse_require_cuda(CUDA_12_4)
    assert req.alternatives[0] == (Condition("cuda", ">=", "12.4"),)
    assert req.alternatives[3] == (
        Condition("brand", "=", "tesla"),
        Condition("driver", ">=", "535"),
        Condition("driver", "<", "536"),
    )
    assert len(req.alternatives) == 5
    assert req.cuda_minimum == "12.4"


@pytest.mark.parametrize("bad", ["cuda=>12.4", "cuda>=12.x", "colour=red", "cuda"])
def test_parse_refuses_what_the_runtime_calls_invalid(bad: str) -> None:
    with pytest.raises(GpubundleError, match="NVIDIA_REQUIRE_CUDA"):
        parse_require_cuda(bad)


def test_versions_compare_numerically_with_zero_padding() -> None:
    assert compare_versions("12.4", "12.4.0") == 0
    assert compare_versions("535.54.03", "535.104.05") < 0
    assert compare_versions("12.10", "12.9") > 0


def test_driver_cuda_tables() -> None:
    assert cuda_for_driver("580.159.04") == "13.0"
    assert cuda_for_driver("550.54.15") == "12.4"
    assert cuda_for_driver("535.54.03") == "12.2"
    assert cuda_for_driver("440.33") == ""
    assert driver_for_cuda("12.4") == "550.54.14"
    assert driver_for_cuda("12.7") == "570.26"  # no 12.7 toolkit: the next release's driver


def test_new_enough_driver_passes() -> None:
    result = check_image_against_driver(CUDA_12_4, "580.159.04")
    assert result.ok
    assert result.needed == "550.54.14"


def test_driver_cuda_version_from_nvml_is_used_when_given() -> None:
    assert not check_image_against_driver("cuda>=12.4", "550.54.14", cuda_version="12.3").ok


def test_older_driver_in_branch_fails_and_says_what_is_needed() -> None:
    result = check_image_against_driver("cuda>=12.4", "535.54.03")
    assert not result.ok
    assert "cuda>=12.4" in result.message
    assert "550.54.14" in result.message
    assert "NVIDIA_DISABLE_REQUIRE" in result.message  # minor-version compatibility applies


def test_forward_compat_alternative_needs_the_brand() -> None:
    # Datacenter GPU on the 535 branch: the brand=tesla,driver 535.x alternative admits it.
    assert check_image_against_driver(CUDA_12_4, "535.104.05", brand="Tesla").ok
    # Same driver, brand unknown: not claimed.
    assert not check_image_against_driver(CUDA_12_4, "535.104.05").ok
    # A brand the image lists only for 470 does not help on 535.
    assert not check_image_against_driver(CUDA_12_4, "535.104.05", brand="Quadro").ok


def test_driver_below_the_major_minimum_does_not_offer_minor_compat() -> None:
    result = check_image_against_driver("cuda>=13.0", "570.86.10")
    assert not result.ok
    assert "580.65.06" in result.message
    assert "NVIDIA_DISABLE_REQUIRE" not in result.message


def test_no_driver_and_no_requirement() -> None:
    assert not check_image_against_driver("cuda>=12.4", "").ok
    assert check_image_against_driver("", "").ok
