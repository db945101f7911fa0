"""The x87 execution glue (cpu/x87_exec.py): the CR0/CR4 checks (#NM, #UD, #MF or FERR#),
pending errors at waiting instructions only, FXSAVE/FXRSTOR/LDMXCSR rules, and instructions
that fault in their store leaving the x87 state as it was. Values are checked against the
host CPU by the differential run (tests/cpu/x87families.py); these tests pin the control
paths the host harness cannot reach from user mode (SDM Vol. 3A §2.5 Table 2-2, Vol. 1 §8.7)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from x86vm.cpu.core import Cpu
from x86vm.cpu.cpuid import cpuid
from x86vm.cpu.errors import CpuFault
from x86vm.cpu.mmu import Ram
from x86vm.cpu.state import (
    CR0_EM,
    CR0_MP,
    CR0_NE,
    CR0_PE,
    CR0_TS,
    CR4_OSFXSR,
    CR4_OSXSAVE,
    EFER_LMA,
    EFER_LME,
    RegisterState,
    Segment,
)
from x86vm.cpu.x87 import SW_ES

CODE = 0x1000
DATA = 0x8000


def make_cpu(code: bytes, cr0: int = CR0_PE | CR0_NE, cr4: int = CR4_OSFXSR) -> Cpu:
    ram = bytearray(0x10000)
    ram[CODE:CODE + len(code)] = code
    cpu = Cpu(Ram([(0, len(ram), ram)]))
    cpu.ram_bytes = ram
    cs = Segment(selector=8, limit=0xFFFFFFFF, type=0xB, l=1, g=1)
    data = Segment(selector=0x10, limit=0xFFFFFFFF, type=0x3, db=1, g=1)
    cpu.set_state(RegisterState(rip=CODE, gprs={"rbx": DATA, "rsp": 0xF000}, cs=cs, ds=data,
                                es=data, ss=data, fs=data, gs=data, cr0=cr0, cr4=cr4,
                                efer=EFER_LME | EFER_LMA))
    return cpu


def step(cpu: Cpu) -> None:
    """One instruction; a fault propagates (rip stays at the instruction)."""
    blk = cpu.translator.single(cpu.sbase[1] + cpu.rip)
    rip = cpu.rip
    try:
        cpu.icount += blk(cpu)
    except CpuFault:
        cpu.rip = rip
        raise


def vector(cpu: Cpu) -> int | None:
    try:
        step(cpu)
    except CpuFault as exc:
        return exc.vector
    return None


FLD1 = bytes.fromhex("d9e8")
FWAIT = bytes.fromhex("9b")
FNINIT = bytes.fromhex("dbe3")
FNSTSW_AX = bytes.fromhex("dfe0")
FXSAVE_RBX = bytes.fromhex("0fae03")
FXRSTOR_RBX = bytes.fromhex("0fae0b")
LDMXCSR_RBX = bytes.fromhex("0fae13")


@pytest.mark.parametrize("cr0, insn, expect", [
    (CR0_EM, FLD1, 7), (CR0_TS, FLD1, 7), (CR0_MP, FLD1, None),
    (CR0_EM, FNINIT, 7), (CR0_TS, FNSTSW_AX, 7),
    (CR0_TS, FWAIT, None), (CR0_EM, FWAIT, None), (CR0_MP | CR0_TS, FWAIT, 7),
    (CR0_TS, FXSAVE_RBX, 7), (CR0_EM, FXSAVE_RBX, 7),
    (CR0_EM, LDMXCSR_RBX, 6), (CR0_TS, LDMXCSR_RBX, 7),
])
def test_cr0_em_ts_mp(cr0, insn, expect):
    cpu = make_cpu(insn, CR0_PE | CR0_NE | cr0)
    cpu.ram_bytes[DATA:DATA + 4] = (0x1F80).to_bytes(4, "little")
    assert vector(cpu) == expect


def test_ldmxcsr_needs_osfxsr_and_rejects_reserved_bits():
    cpu = make_cpu(LDMXCSR_RBX, cr4=0)
    cpu.ram_bytes[DATA:DATA + 4] = (0x1F80).to_bytes(4, "little")
    assert vector(cpu) == 6
    cpu = make_cpu(LDMXCSR_RBX)
    cpu.ram_bytes[DATA:DATA + 4] = (0x11F80).to_bytes(4, "little")
    assert vector(cpu) == 13
    cpu.ram_bytes[DATA:DATA + 4] = (0x7F80 | 0x3F).to_bytes(4, "little")
    assert vector(cpu) is None and cpu.mxcsr == 0x7FBF


# fldcw (%rbx) [ZE unmasked]; fld1; fldz; fdivp (1/0: ZE pending); fnstsw %ax; fld1
PENDING = bytes.fromhex("d92b" "d9e8" "d9ee" "def9" "dfe0" "d9e8")


def _pending(cr0: int):
    cpu = make_cpu(PENDING, cr0)
    cpu.ram_bytes[DATA:DATA + 2] = (0x037B).to_bytes(2, "little")
    for _ in range(4):
        assert vector(cpu) is None
    assert cpu.x87.sw & SW_ES and cpu.x87.sw & 4
    assert vector(cpu) is None            # FNSTSW: non-waiting
    assert cpu.r[0] & 0xFFFF == cpu.x87.status_word
    return cpu


def test_pending_error_is_mf_with_cr0_ne():
    cpu = _pending(CR0_PE | CR0_NE)
    rip = cpu.rip
    assert vector(cpu) == 16               # the next waiting instruction, before it runs
    assert cpu.rip == rip and cpu.x87.top == 6   # (the faulting FDIVP did not pop)


def test_pending_error_is_ferr_without_cr0_ne():
    cpu = _pending(CR0_PE)
    levels = []
    cpu.ferr = levels.append
    assert vector(cpu) is None             # FERR# (IRQ13 on a PC); the instruction runs
    assert levels == [True] and cpu.x87.top == 5


def test_fxsave_alignment_and_fxrstor_mxcsr_check():
    cpu = make_cpu(FXSAVE_RBX)
    cpu.r[3] = DATA + 8
    assert vector(cpu) == 13
    cpu = make_cpu(FXRSTOR_RBX)
    image = bytearray(512)
    image[24:28] = (0x10000).to_bytes(4, "little")
    cpu.ram_bytes[DATA:DATA + 512] = image
    before = cpu.x87.cw
    assert vector(cpu) == 13 and cpu.x87.cw == before


def test_fxsave_fxrstor_round_trip_in_64_bit_mode():
    # fld1; fldpi; fxsave (%rbx); fninit; fxrstor (%rbx)
    cpu = make_cpu(bytes.fromhex("d9e8" "d9eb" "0fae03" "dbe3" "0fae0b"))
    cpu.xmm[:] = [(i + 1) * 0x0101010101010101_0202020202020202 for i in range(16)]
    cpu.mxcsr = 0x1F80 | 0x6000
    for _ in range(3):
        step(cpu)
    saved = bytes(cpu.ram_bytes[DATA:DATA + 512])
    regs, top, sw = list(cpu.x87.regs), cpu.x87.top, cpu.x87.status_word
    xmm = list(cpu.xmm)
    step(cpu)
    cpu.xmm[:] = [0] * 16
    cpu.mxcsr = 0x1F80
    step(cpu)
    assert cpu.x87.regs == regs and cpu.x87.top == top and cpu.x87.status_word == sw
    assert cpu.xmm == xmm and cpu.mxcsr == 0x7F80
    assert saved[160 + 16 * 15:176 + 16 * 15] == xmm[15].to_bytes(16, "little")


def test_store_that_faults_leaves_the_x87_state_alone():
    # fld1; fstpl (%rbx) — the store faults: TOP and the tags must not move
    cpu = make_cpu(bytes.fromhex("d9e8" "dd1b"))
    step(cpu)
    top, empty, fop = cpu.x87.top, cpu.x87.empty, cpu.x87.fop

    def fault(la, size, value):
        raise CpuFault(14, 2)

    cpu.write_mem = fault
    assert vector(cpu) == 14
    assert (cpu.x87.top, cpu.x87.empty, cpu.x87.fop) == (top, empty, fop)
    del cpu.write_mem
    assert vector(cpu) is None
    assert cpu.x87.empty == 0xFF
    assert cpu.ram_bytes[DATA:DATA + 8] == (0x3FF0000000000000).to_bytes(8, "little")


def test_cpuid_advertises_fpu_and_fxsr():
    edx = cpuid(1, 0)[3]
    assert edx & 1 and edx & (1 << 24)


def test_fpu_reset_is_fninit_and_init_keeps_the_sse_state():
    cpu = make_cpu(bytes.fromhex("d9e8" "d9eb"))
    step(cpu)
    step(cpu)
    cpu.xmm[3], cpu.mxcsr = 5, 0x1F00
    cpu.fpu_reset(init=True)
    x = cpu.x87
    assert (x.cw, x.status_word, x.tag_word, x.regs) == (0x37F, 0, 0xFFFF, [0] * 8)
    assert (cpu.xmm[3], cpu.mxcsr) == (5, 0x1F00)
    cpu.fpu_reset()
    assert (cpu.xmm[3], cpu.mxcsr) == (0, 0x1F80)


def test_get_state_carries_the_fpu_and_set_state_loads_it():
    cpu = make_cpu(bytes.fromhex("d9e8" "d9eb"))
    step(cpu)
    step(cpu)
    cpu.xmm[7], cpu.mxcsr = 1 << 127 | 5, 0x1FA0
    state = cpu.get_state()
    fpu = state.fpu
    assert (fpu.fcw, fpu.fsw, fpu.ftw) == (0x37F, 0x3000, 0x0FFF)
    assert fpu.st[:2] == (cpu.x87.st(0), 0x3FFF8000000000000000)
    assert (fpu.xmm[7], fpu.mxcsr) == (1 << 127 | 5, 0x1FA0)
    other = make_cpu(b"")
    other.set_state(state)
    assert other.get_state().fpu == fpu


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")
def test_gdb_reads_the_x87_registers_on_emu(tmp_path):
    """The real gdb shows the x87 stack of the emu backend (``info registers`` st0, fctrl...)."""
    from test_gdb_stub import free_port, start_vm

    image = tmp_path / "fpu.bin"
    # 7c00: fninit; fld1; fldpi; jmp .
    image.write_bytes(bytes.fromhex("dbe3" "d9e8" "d9eb" "ebfe"))
    port = free_port()
    vm = start_vm(image, "--loader", "flat", "--backend", "emu", "--gdb", f"tcp::{port}",
                  "--wait-gdb", "--timeout", "30", "--serial", "none")
    script = ["set pagination off", "set confirm off", f"target remote :{port}",
              "stepi", "stepi", "stepi", "info registers st0 st1 st2 fctrl fstat ftag fop",
              "kill"]
    args = ["gdb", "-batch", "-nx"] + [a for cmd in script for a in ("-ex", cmd)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    vm.kill()
    vm.communicate(timeout=30)
    out = done.stdout + done.stderr
    assert re.search(r"st0 +3\.14159265358979323\d* +\(raw 0x4000c90fdaa22168c235\)", out), out
    assert re.search(r"st1 +1 +\(raw 0x3fff8000000000000000\)", out), out
    assert re.search(r"fctrl +0x37f", out) and re.search(r"fstat +0x3000", out), out
    assert re.search(r"ftag +0xfff\b", out) and re.search(r"fop +0x1eb", out), out


XGETBV = bytes.fromhex("0f01d0")
XSETBV = bytes.fromhex("0f01d1")
XSAVE_RBX = bytes.fromhex("0fae23")


@pytest.mark.parametrize("insn, cr4, rcx, value, expect", [
    (XGETBV, 0, 0, 0, 6), (XSETBV, 0, 0, 3, 6), (XSAVE_RBX, 0, 0, 3, 6),
    (XSETBV, CR4_OSXSAVE, 0, 3, None), (XSETBV, CR4_OSXSAVE, 1, 3, 13),
    (XSETBV, CR4_OSXSAVE, 0, 2, 13), (XSETBV, CR4_OSXSAVE, 0, 7, 13),
    (XGETBV, CR4_OSXSAVE, 0, 0, None), (XGETBV, CR4_OSXSAVE, 1, 0, 13),
])
def test_xgetbv_xsetbv_rules(insn, cr4, rcx, value, expect):
    cpu = make_cpu(insn, cr4=CR4_OSFXSR | cr4)
    cpu.r[0], cpu.r[1], cpu.r[2] = value, rcx, 0
    assert vector(cpu) == expect
    if expect is None and insn == XSETBV:
        assert cpu.xcr0 == value
    if expect is None and insn == XGETBV:
        assert (cpu.r[0], cpu.r[2]) == (1, 0)     # XCR0 after reset: x87 only


def test_xsave_needs_a_64_byte_aligned_area_and_cr0_ts_clear():
    cpu = make_cpu(XSAVE_RBX, cr4=CR4_OSFXSR | CR4_OSXSAVE)
    cpu.r[3] = DATA + 16
    assert vector(cpu) == 13
    cpu = make_cpu(XSAVE_RBX, CR0_PE | CR0_TS, cr4=CR4_OSFXSR | CR4_OSXSAVE)
    assert vector(cpu) == 7


def test_cpuid_osxsave_mirrors_cr4_and_leaf_0d_reports_x87_sse():
    cpuid_insn = bytes.fromhex("0fa2")
    for cr4, bit in ((0, 0), (CR4_OSXSAVE, 1 << 27)):
        cpu = make_cpu(cpuid_insn, cr4=cr4)
        cpu.r[0], cpu.r[1] = 1, 0
        step(cpu)
        assert cpu.r[1] & (1 << 27) == bit and cpu.r[1] & (1 << 26)
    assert cpuid(0xD, 0) == (3, 576, 576, 0) and cpuid(0xD, 1) == (0, 0, 0, 0)
