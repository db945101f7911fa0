"""The CPU against the host CPU: random instructions of each family run natively (a
gcc-built harness, cpu/hostcpu.py) and on the emulator from the same registers, flags and
memory, as 64-bit code and as 32-bit code (``gcc -m32``); general registers, the defined
flags and memory must agree. The x87 families (cpu/x87families.py) load a random x87 state
with FRSTOR and compare the FNSAVE image after the instructions under test.
``python3 tests/cpu/diffrun.py --count N`` runs more (``--x87``: the x87 families only)."""

from __future__ import annotations

import pytest

from cpu import families, x87families
from cpu.hostcpu import Emu, compare, harness_available, run_on_host

SAMPLE = 120  # cases per family and code size in the default suite
KINDS = {name: (families.generate, compare) for name in families.FAMILIES}
KINDS.update({name: (x87families.generate, x87families.compare)
              for name in x87families.X87_FAMILIES})


@pytest.fixture(scope="module", params=[64, 32])
def host_results(request):
    why = harness_available()
    if why:
        pytest.skip(why)
    bits = request.param
    cases = {name: gen(name, SAMPLE, seed=1, bits=bits) for name, (gen, _) in KINDS.items()}
    flat = [c for name in KINDS for c in cases[name]]
    try:
        outcomes = run_on_host(flat, bits)
    except RuntimeError as exc:
        if bits == 32:
            pytest.skip(f"no 32-bit harness here (gcc -m32): {exc}")
        raise
    it = iter(outcomes)
    return bits, {name: [(c, next(it)) for c in cases[name]] for name in KINDS}


@pytest.mark.parametrize("family", list(KINDS))
def test_family_matches_host(host_results, family):
    bits, results = host_results
    emu = Emu(bits)
    check = KINDS[family][1]
    failures = []
    for case, host in results[family]:
        diffs = check(case, host, emu.run(case, host.code))
        if diffs:
            failures.append(f"{case.text}: {'; '.join(diffs)}")
    assert not failures, f"{len(failures)} of {SAMPLE} differ:\n" + "\n".join(failures[:15])
