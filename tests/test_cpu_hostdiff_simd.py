"""MMX/SSE against the host CPU: random instructions of each class run natively (the gcc-built
harness of cpu/hostsimd.py) and on the emulator from the same general, XMM and MMX registers,
MXCSR, flags and memory; registers, MXCSR, flags, memory, the x87 tags and the exception
vector (#GP for a misaligned MOVDQA, #XM for an unmasked SIMD exception) must agree. 64-bit
and 32-bit code. ``python3 tests/cpu/simdrun.py --count N`` runs more."""

from __future__ import annotations

import pytest

from cpu.hostcpu import harness_available
from cpu.hostsimd import Emu, SimdCase, compare, run_on_host
from cpu.simd_families import FAMILIES, generate
from x86vm.cpu.state import CR0_EM, CR0_MP, CR0_NE, CR0_PE, CR0_TS, CR4_OSFXSR, CR4_OSXMMEXCPT

SAMPLE = 150  # cases per class and code size in the default suite


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
def test_class_matches_host(host_results, family):
    bits, results = host_results
    emu = Emu(bits)
    failures = []
    for case, host in results[family]:
        diffs = compare(case, host, emu.run(case, host.code))
        if diffs:
            failures.append(f"{case.text}: {'; '.join(diffs)}")
    assert not failures, f"{len(failures)} of {SAMPLE} differ:\n" + "\n".join(failures[:15])


# -- availability (SDM Vol. 3A §13.1, Table 13-? "Action taken for combinations of EM, MP, TS")
# This host's user space cannot change CR0/CR4, so the expected vectors are the SDM's.
PADDB_XMM = bytes.fromhex("660ffcc1")     # paddb %xmm1, %xmm0
PADDB_MM = bytes.fromhex("0ffcc1")        # paddb %mm1, %mm0
LINUX_CR0 = CR0_PE | CR0_MP | CR0_NE
LINUX_CR4 = CR4_OSFXSR | CR4_OSXMMEXCPT


@pytest.mark.parametrize("code, cr0, cr4, vector", [
    (PADDB_XMM, LINUX_CR0, LINUX_CR4, None),
    (PADDB_XMM, LINUX_CR0 | CR0_EM, LINUX_CR4, 6),
    (PADDB_XMM, LINUX_CR0, CR4_OSXMMEXCPT, 6),
    (PADDB_XMM, LINUX_CR0 | CR0_TS, LINUX_CR4, 7),
    (PADDB_MM, LINUX_CR0, LINUX_CR4, None),
    (PADDB_MM, LINUX_CR0, 0, None),             # MMX does not need CR4.OSFXSR
    (PADDB_MM, LINUX_CR0 | CR0_EM, LINUX_CR4, 6),
    (PADDB_MM, LINUX_CR0 | CR0_TS, LINUX_CR4, 7),
])
def test_availability_checks(code, cr0, cr4, vector):
    emu = Emu(64)
    case = SimdCase("", {}, 0x202, bytes(0x1000), [3] * 16, [5] * 8)
    out = emu.run(case, code, cr0=cr0, cr4=cr4)
    assert out.fault == (255 if vector is None else vector)
    if vector is None:
        assert (out.xmm[0] if code == PADDB_XMM else out.mm[0]) == \
            (6 if code == PADDB_XMM else 10)


def test_unmasked_exception_without_osxmmexcpt_is_ud():
    """SDM Vol. 3A §13.4: an unmasked SIMD FP exception with CR4.OSXMMEXCPT=0 raises #UD."""
    emu = Emu(64)
    one = 0x3F800000
    case = SimdCase("", {}, 0x202, bytes(0x1000), [one, 0] + [0] * 14, [0] * 8,
                    mxcsr=0x1F80 & ~0x200)   # ZE unmasked
    code = bytes.fromhex("f30f5ec1")         # divss %xmm1, %xmm0
    assert emu.run(case, code, cr4=CR4_OSFXSR).fault == 6
    assert emu.run(case, code).fault == 19
