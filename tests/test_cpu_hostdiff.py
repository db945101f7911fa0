"""The CPU against the host CPU: random instructions of each family run natively (a
gcc-built harness, cpu/hostcpu.py) and on the emulator from the same registers, flags and
memory; general registers, the defined flags and memory must agree."""

from __future__ import annotations

import pytest

from cpu.families import FAMILIES, generate
from cpu.hostcpu import Emu, compare, harness_available, run_on_host

SAMPLE = 150  # cases per family in the default suite


@pytest.fixture(scope="module")
def host_results():
    why = harness_available()
    if why:
        pytest.skip(why)
    cases = {name: generate(name, SAMPLE, seed=1) for name in FAMILIES}
    flat = [c for name in FAMILIES for c in cases[name]]
    outcomes = run_on_host(flat)
    it = iter(outcomes)
    return {name: [(c, next(it)) for c in cases[name]] for name in FAMILIES}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_host(host_results, family):
    emu = Emu()
    failures = []
    for case, host in host_results[family]:
        diffs = compare(case, host, emu.run(case, host.code))
        if diffs:
            failures.append(f"{case.text}: {'; '.join(diffs)}")
    assert not failures, f"{len(failures)} of {SAMPLE} differ:\n" + "\n".join(failures[:15])
