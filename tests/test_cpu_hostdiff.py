"""The CPU against the host CPU: random instructions of each family run natively (a
gcc-built harness, cpu/hostcpu.py) and on the emulator from the same registers, flags and
memory, as 64-bit code and as 32-bit code (``gcc -m32``); general registers, the defined
flags and memory must agree. ``python3 tests/cpu/diffrun.py --count N`` runs more."""

from __future__ import annotations

import pytest

from cpu.families import FAMILIES, generate
from cpu.hostcpu import Emu, compare, harness_available, run_on_host

SAMPLE = 120  # cases per family and code size in the default suite


@pytest.fixture(scope="module", params=[64, 32])
def host_results(request):
    why = harness_available()
    if why:
        pytest.skip(why)
    bits = request.param
    cases = {name: generate(name, SAMPLE, seed=1, bits=bits) for name in FAMILIES}
    flat = [c for name in FAMILIES for c in cases[name]]
    try:
        outcomes = run_on_host(flat, bits)
    except RuntimeError as exc:
        if bits == 32:
            pytest.skip(f"no 32-bit harness here (gcc -m32): {exc}")
        raise
    it = iter(outcomes)
    return bits, {name: [(c, next(it)) for c in cases[name]] for name in FAMILIES}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_host(host_results, family):
    bits, results = host_results
    emu = Emu(bits)
    failures = []
    for case, host in results[family]:
        diffs = compare(case, host, emu.run(case, host.code))
        if diffs:
            failures.append(f"{case.text}: {'; '.join(diffs)}")
    assert not failures, f"{len(failures)} of {SAMPLE} differ:\n" + "\n".join(failures[:15])
