"""MMX/SSE on the emulator beside the host CPU's rules: the availability checks of CR0/CR4,
the exceptions a SIMD instruction raises, RCPPS/RSQRTPS within the architectural bound of the
host's values, 16-byte accesses across a page. The random differential of every MMX/SSE class
against the host runs in tests/test_cpu_hostdiff.py."""

from __future__ import annotations

import pytest

from cpu.hostcpu import LINUX_CR0, LINUX_CR4, Emu, SimdCase, harness_available, run_on_host
from x86vm.cpu.state import CR0_EM, CR0_TS, CR4_OSFXSR, CR4_OSXMMEXCPT

# -- availability (SDM Vol. 3A §13.1, Table 13-? "Action taken for combinations of EM, MP, TS")
# This host's user space cannot change CR0/CR4, so the expected vectors are the SDM's.
PADDB_XMM = bytes.fromhex("660ffcc1")     # paddb %xmm1, %xmm0
PADDB_MM = bytes.fromhex("0ffcc1")        # paddb %mm1, %mm0


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


def test_pending_x87_exception_faults_mmx_with_mf():
    """SDM Vol. 2 (every MMX instruction): #MF if an x87 exception is pending (CR0.NE=1)."""
    from x86vm.cpu.x87 import SW_ES

    emu = Emu(64)
    case = SimdCase("", {}, 0x202, bytes(0x1000), [3] * 16, [5] * 8)

    def pending(cpu):
        cpu.x87.sw |= SW_ES

    assert emu.run(case, PADDB_MM, setup=pending).fault == 16
    assert emu.run(case, PADDB_XMM, setup=pending).fault == 255   # SSE ignores the x87 state


def _f32(bits: int) -> float:
    import struct
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def test_rcp_rsqrt_within_bound_of_host():
    """RCPPS/RSQRTPS/RCPSS/RSQRTSS: the exact bits are implementation specific (AMD and Intel
    tables differ); the host and x86vm must each be within 1.5·2⁻¹² of the true value, so
    they agree within 3·2⁻¹², and agree exactly on the special values."""
    if harness_available():
        pytest.skip(harness_available())
    import random

    from cpu.simd_families import generate
    rng = random.Random(5)
    cases = []
    for case in generate("sse_fp", 300, seed=9):
        op = rng.choice(("rcpps", "rsqrtps", "rcpss", "rsqrtss"))
        case.text = f"{op} %xmm1, %xmm2"
        case.mxcsr = 0x1F80
        cases.append(case)
    emu = Emu(64)
    for case, host in zip(cases, run_on_host(cases, 64), strict=True):
        out = emu.run(case, host.code)
        for lane in range(4):
            h = (host.xmm[2] >> (32 * lane)) & 0xFFFFFFFF
            e = (out.xmm[2] >> (32 * lane)) & 0xFFFFFFFF
            hv, ev = _f32(h), _f32(e)
            if h == e:
                continue
            finite = abs(hv) not in (0.0, float("inf")) and hv == hv
            assert finite and abs(ev - hv) <= abs(hv) * 3 * 2**-12, \
                f"{case.text} lane {lane}: host {h:#x} emu {e:#x}"
        assert out.mxcsr == host.mxcsr and out.fault == host.fault


@pytest.mark.parametrize("offset", [0xFF0, 0xFF1, 0xFF8, 0xFFF])
def test_unaligned_16_byte_access_across_a_page(offset):
    """MOVDQU load and store where the 16 bytes straddle two pages (the quadword fast path
    only serves accesses inside one page)."""
    emu = Emu(64)
    case = SimdCase("", {"rbx": 0x10000000 + offset}, 0x202, bytes(0x1000), [0] * 16, [0] * 8)
    pattern = bytes(range(1, 17))

    def place(cpu):
        emu.data[offset:offset + 16] = pattern

    out = emu.run(case, bytes.fromhex("f30f6f03"), setup=place)   # movdqu (%rbx), %xmm0
    assert out.xmm[0] == int.from_bytes(pattern, "little")
    case.xmm = [int.from_bytes(pattern[::-1], "little")] + [0] * 15
    emu.data[:] = bytes(len(emu.data))
    emu.run(case, bytes.fromhex("f30f7f03"))                      # movdqu %xmm0, (%rbx)
    assert bytes(emu.data[offset:offset + 16]) == pattern[::-1]
