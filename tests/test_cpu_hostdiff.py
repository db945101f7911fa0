"""The CPU against the host CPU: a sample of every class of tests/cpu/diffrun.py — the
integer families (cpu/families.py), x87 (cpu/x87families.py: a random x87 state loaded with
FRSTOR, the FNSAVE image compared after the instructions) and MMX/SSE
(cpu/simd_families.py: XMM/MMX registers, MXCSR, the x87 tags) — runs natively in the
gcc-built harness of cpu/hostcpu.py and on the emulator from the same state, as 64-bit code
and as 32-bit code (``gcc -m32``); general registers, the defined flags, memory and the
exception vector must agree. ``python3 tests/cpu/diffrun.py --count N`` (or ``--total N``)
is the full run, with the same runner."""

from __future__ import annotations

import pytest

from cpu.diffrun import KINDS, run_classes
from cpu.hostcpu import harness_available

SAMPLE = 120  # cases per class and code size in the default suite


@pytest.fixture(scope="module", params=[64, 32])
def results(request):
    why = harness_available()
    if why:
        pytest.skip(why)
    bits = request.param
    try:     # one harness for the SIMD classes, one for the others
        return run_classes(list(KINDS), SAMPLE, seed=1, bits=bits, batch=SAMPLE * len(KINDS))
    except RuntimeError as exc:
        if bits == 32:
            pytest.skip(f"no 32-bit harness here (gcc -m32): {exc}")
        raise


@pytest.mark.parametrize("name", list(KINDS))
def test_class_matches_host(results, name):
    bad = results[name].mismatches
    assert not bad, f"{len(bad)} of {SAMPLE} differ:\n" + "\n".join(bad[:15])
