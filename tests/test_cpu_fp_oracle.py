"""x86vm's floating point against the host CPU (tests/cpu_fp/harness.c built with gcc): a
seeded sample of every operation family; `python3 tests/cpu_fp/fuzz.py N` is the full run."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cpu_fp"))

import fphost as oracle  # noqa: E402
import fuzz  # noqa: E402

_WHY = oracle.available()
pytestmark = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")


@pytest.mark.parametrize("family", sorted(fuzz.FAMILIES))
def test_sample_matches_host(family: str) -> None:
    out = io.StringIO()
    res = fuzz.run(300, 20261205, [family], out=out)
    bad = {op: m for op, (_, m) in res.items() if m}
    assert not bad, out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(fuzz.FAMILIES))
def test_full_matches_host(family: str) -> None:
    out = io.StringIO()
    res = fuzz.run(20000, 7, [family], out=out)
    bad = {op: m for op, (_, m) in res.items() if m}
    assert not bad, out.getvalue()


def test_harness_detects_a_wrong_answer() -> None:
    """The comparison can fail: a deliberately wrong model answer is caught."""
    with oracle.Oracle() as o:
        (line,) = o.run(["fadd 37f 3fff8000000000000000 3fff8000000000000000"])
    assert fuzz._canon("fadd", line) == fuzz._canon("fadd", "40008000000000000000 0000")
    assert fuzz._canon("fadd", line) != fuzz._canon("fadd", "40008000000000000001 0000")


def test_transcendentals_within_one_ulp_of_the_host() -> None:
    """FSIN...FYL2XP1: the host is not correctly rounded; x86vm must stay within 1 ulp of it,
    with the same IE/DE/ZE/OE/UE and C2 (tests/cpu_fp/trans.py N for a long run)."""
    import trans

    out = io.StringIO()
    res = trans.run(150, 20261205, out=out)
    for op, (_, _, worst, bad) in res.items():
        assert worst <= 1 and not bad, (op, out.getvalue())
