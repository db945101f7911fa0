"""The host CPU as the oracle for MMX/SSE instructions: the integer harness of
:mod:`cpu.hostcpu` extended with XMM0-15 (XMM0-7 in 32-bit code), MM0-7, MXCSR, the x87
tag word, and faults.

Each case loads the SIMD state (MOVDQU, MOVQ, LDMXCSR) and the general registers, runs the
instruction, and stores everything back. A fault (#GP for a misaligned MOVDQA, #XM for an
unmasked SIMD exception, #UD, #MF) is caught by a signal handler on an alternate stack: it
records the vector (``REG_TRAPNO``) and resumes at the store code, so the registers, MXCSR and
memory are those the fault left. The emulator runs the same bytes from the same state with
CR0.MP/NE and CR4.OSFXSR/OSXMMEXCPT set (as Linux runs user space) and reports the vector of
the exception it would deliver.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cpu.hostcpu import (
    ARITH,
    CODE_BASE,
    GPRS,
    GPRS32,
    MEM_BASE,
    MEM_SIZE,
    STACK_TOP,
    Case,
    _reg64,
    undefined_mask,
)
from x86vm.cpu.core import Cpu
from x86vm.cpu.mmu import Ram
from x86vm.cpu.state import (
    CR0_MP,
    CR0_NE,
    CR0_PE,
    CR4_OSFXSR,
    CR4_OSXMMEXCPT,
    EFER_LMA,
    EFER_LME,
    RegisterState,
    Segment,
)
from x86vm.cpu.x87 import mmx_enter, mmx_write

SIMD_IN = 16 * 16 + 8 * 8 + 8      # xmm0-15, mm0-7, mxcsr (+pad)
SIMD_OUT = SIMD_IN + 32            # + FNSTENV image (28 bytes, +pad)
NO_FAULT = 0xFF


@dataclass
class SimdCase(Case):
    xmm: list[int] = field(default_factory=lambda: [0] * 16)
    mm: list[int] = field(default_factory=lambda: [0] * 8)
    mxcsr: int = 0x1F80


@dataclass
class SimdOutcome:
    code: bytes
    regs: dict[str, int]
    rflags: int
    memory: bytes
    xmm: list[int]
    mm: list[int]
    mxcsr: int
    tags: int        # abridged: bit i set = physical register i not empty
    fault: int       # exception vector, NO_FAULT if none


_DRIVER = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
extern unsigned char testmem[];
extern const unsigned char testmem_init[];
extern void (*const cases[])(void);
extern const uintptr_t bounds[];
extern uintptr_t outs[];
extern unsigned char simd_out[];
extern const long ncases;
static volatile long cur;
static volatile int fault;
static char altstack[65536];
#ifdef __x86_64__
#define PC REG_RIP
#else
#define PC REG_EIP
#endif
static void handler(int sig, siginfo_t *si, void *p) {
    ucontext_t *uc = p;
    fault = uc->uc_mcontext.gregs[REG_TRAPNO];
    uc->uc_mcontext.gregs[PC] = bounds[2 * cur + 1];
}
int main(void) {
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGBUS, &sa, 0);
    sigaction(SIGFPE, &sa, 0);
    sigaction(SIGILL, &sa, 0);
    for (long k = 0; k < ncases; k++) {
        memcpy(testmem, testmem_init + k * MEMSZ, MEMSZ);
        cur = k;
        fault = 0xFF;
        cases[k]();
        uint64_t len = bounds[2 * k + 1] - bounds[2 * k];
        unsigned char f = fault;
        write(1, &len, 8);
        write(1, (const void *)bounds[2 * k], len);
        write(1, &outs[NREC * k], NREC * sizeof(uintptr_t));
        write(1, testmem, MEMSZ);
        write(1, simd_out + k * SIMDOUT, SIMDOUT);
        write(1, &f, 1);
    }
    return 0;
}
"""


def _simd_load(k: int, bits: int) -> list[str]:
    nx = 16 if bits == 64 else 8
    if bits == 64:
        lines = [f"lea simd_in+{SIMD_IN * k}(%rip), %rax"]
        r = "%rax"
    else:
        lines = [f"lea simd_in+{SIMD_IN * k}, %eax"]
        r = "%eax"
    lines += [f"movdqu {16 * i}({r}), %xmm{i}" for i in range(nx)]
    lines += [f"movq {256 + 8 * i}({r}), %mm{i}" for i in range(8)]
    lines.append(f"ldmxcsr {320}({r})")
    return lines


def _simd_store(k: int, bits: int) -> list[str]:
    nx = 16 if bits == 64 else 8
    if bits == 64:
        lines = [f"lea simd_out+{SIMD_OUT * k}(%rip), %rax"]
        r = "%rax"
    else:
        lines = [f"lea simd_out+{SIMD_OUT * k}, %eax"]
        r = "%eax"
    lines += [f"fnstenv {328}({r})"]     # before MOVQ from MMi makes every tag valid
    lines += [f"movdqu %xmm{i}, {16 * i}({r})" for i in range(nx)]
    lines += [f"movq %mm{i}, {256 + 8 * i}({r})" for i in range(8)]
    sp = "%rsp" if bits == 64 else "%esp"
    lines += [f"stmxcsr {320}({r})", "fninit", "emms", "push $0x1f80", f"ldmxcsr ({sp})",
              f"pop {r}"]
    return lines


def _case_asm64(k: int) -> list[str]:
    load = ["popfq"] + [f"pop %{r}" for r in GPRS] + ["mov (%rsp), %rsp"]
    store = [f"mov %rsp, outs+{8 * (17 * k + 16)}(%rip)",
             f"lea outs+{8 * (17 * k + 16)}(%rip), %rsp"]
    store += [f"push %{r}" for r in reversed(GPRS)] + ["pushfq"]
    return [f"case_{k}:", "push %rbx", "push %rbp", "push %r12", "push %r13", "push %r14",
            "push %r15", "mov %rsp, saved_rsp(%rip)", *_simd_load(k, 64),
            f"lea ins+{8 * 17 * k}(%rip), %rsp", *load, f"i_{k}:", "CASE_TEXT", f"e_{k}:",
            *store, "cld", "mov saved_rsp(%rip), %rsp", *_simd_store(k, 64),
            "pop %r15", "pop %r14", "pop %r13", "pop %r12", "pop %rbp", "pop %rbx", "ret"]


def _case_asm32(k: int) -> list[str]:
    load = ["popfl"] + [f"pop %{r}" for r in GPRS32] + ["mov (%esp), %esp"]
    store = [f"mov %esp, outs+{4 * (9 * k + 8)}", f"lea outs+{4 * (9 * k + 8)}, %esp"]
    store += [f"push %{r}" for r in reversed(GPRS32)] + ["pushfl"]
    return [f"case_{k}:", "push %ebx", "push %ebp", "push %esi", "push %edi",
            "mov %esp, saved_rsp", *_simd_load(k, 32), f"lea ins+{4 * 9 * k}, %esp", *load,
            f"i_{k}:", "CASE_TEXT", f"e_{k}:", *store, "cld", "mov saved_rsp, %esp",
            *_simd_store(k, 32), "pop %edi", "pop %esi", "pop %ebp", "pop %ebx", "ret"]


def _simd_bytes(case: SimdCase) -> bytes:
    out = b"".join(x.to_bytes(16, "little") for x in case.xmm)
    out += b"".join(m.to_bytes(8, "little") for m in case.mm)
    return out + struct.pack("<II", case.mxcsr, 0)


def run_on_host(cases: list[SimdCase], bits: int = 64) -> list[SimdOutcome]:
    """Run ``cases`` natively (``gcc -m32`` for ``bits=32``)."""
    word = ".quad" if bits == 64 else ".long"
    regs = GPRS if bits == 64 else GPRS32
    nrec = len(regs) + 2
    template = _case_asm64 if bits == 64 else _case_asm32
    lines = [".text"]
    for k, case in enumerate(cases):
        lines += [case.text if line == "CASE_TEXT" else line for line in template(k)]
    lines += [".section .rodata", ".align 16", ".globl cases, bounds, ncases, testmem_init",
              "cases:"] + [f"{word} case_{k}" for k in range(len(cases))]
    lines += ["bounds:"] + [f"{word} i_{k}, e_{k}" for k in range(len(cases))]
    lines += [f"ncases: {word} {len(cases)}", "testmem_init:"]
    for case in cases:
        lines.append(".byte " + ",".join(str(b) for b in case.memory))
    lines += [".align 16", "simd_in:"]
    for case in cases:
        lines.append(".byte " + ",".join(str(b) for b in _simd_bytes(case)))
    lines += [".data", ".align 16", f"saved_rsp: {word} 0", "ins:"]
    wmask = (1 << bits) - 1
    for case in cases:
        values = [case.rflags] + [case.regs.get(_reg64(r), 0) & wmask for r in regs]
        values.append(case.regs.get("rsp", STACK_TOP))
        lines.append(f"{word} " + ",".join(str(v) for v in values))
    lines += [".globl outs, simd_out", "outs:", f".skip {nrec * bits // 8 * len(cases)}",
              ".align 16", "simd_out:", f".skip {SIMD_OUT * len(cases)}",
              ".section .testmem, \"aw\"", ".globl testmem", "testmem:", f".skip {0x2000}"]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "cases.S").write_text("\n".join(lines) + "\n")
        (t / "driver.c").write_text(_DRIVER)
        proc = subprocess.run(
            ["gcc", "-O1", "-no-pie", f"-m{bits}", f"-DMEMSZ={MEM_SIZE}", f"-DNREC={nrec}",
             f"-DSIMDOUT={SIMD_OUT}", "-o", str(t / "h"), str(t / "driver.c"),
             str(t / "cases.S"), f"-Wl,--section-start=.testmem={MEM_BASE:#x}"],
            capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        proc = subprocess.run([str(t / "h")], capture_output=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(f"harness died with status {proc.returncode}")
    data = proc.stdout
    pos = 0
    results = []
    nx = 16 if bits == 64 else 8
    for _ in cases:
        (n,) = struct.unpack_from("<Q", data, pos)
        code = data[pos + 8:pos + 8 + n]
        pos += 8 + n
        fmt = f"<{nrec}{'Q' if bits == 64 else 'I'}"
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        mem = data[pos:pos + MEM_SIZE]
        pos += MEM_SIZE
        simd = data[pos:pos + SIMD_OUT]
        pos += SIMD_OUT
        fault = data[pos]
        pos += 1
        out = {_reg64(r): v for r, v in zip(regs, vals[1:-1], strict=True)}
        out["rsp"] = vals[-1]
        xmm = [int.from_bytes(simd[16 * i:16 * i + 16], "little") for i in range(nx)]
        mm = [int.from_bytes(simd[256 + 8 * i:264 + 8 * i], "little") for i in range(8)]
        (mxcsr,) = struct.unpack_from("<I", simd, 320)
        ftw = struct.unpack_from("<H", simd, 328 + 8)[0]
        tags = sum(1 << i for i in range(8) if (ftw >> (2 * i)) & 3 != 3)
        results.append(SimdOutcome(code, out, vals[0], mem, xmm, mm, mxcsr, tags, fault))
    return results


class Emu:
    """The vCPU over the harness's addresses, with the SIMD state of each case."""

    def __init__(self, bits: int = 64) -> None:
        self.bits = bits
        self.code = bytearray(0x100000)
        self.data = bytearray(0x2000)
        self.cpu = Cpu(Ram([(CODE_BASE, CODE_BASE + len(self.code), self.code),
                            (MEM_BASE, MEM_BASE + len(self.data), self.data)]))
        self.next = 0
        self.fault = NO_FAULT
        self.cpu._fault = self._record

    def _record(self, exc) -> bool:
        self.fault = exc.vector
        return False

    def run(self, case: SimdCase, code: bytes, cr0: int = CR0_PE | CR0_MP | CR0_NE,
            cr4: int = CR4_OSFXSR | CR4_OSXMMEXCPT, setup=None) -> SimdOutcome:
        at = self.next
        self.next += 32
        if self.next + 32 > len(self.code):
            self.next = 0
        self.code[at:at + len(code) + 1] = code + b"\xf4"   # hlt
        self.data[:MEM_SIZE] = case.memory
        if self.bits == 64:
            cs = Segment(selector=8, limit=0xFFFFFFFF, type=0xB, l=1, g=1)
            efer = EFER_LME | EFER_LMA
            wmask = 2**64 - 1
        else:
            cs = Segment(selector=8, limit=0xFFFFFFFF, type=0xB, db=1, g=1)
            efer = 0
            wmask = 2**32 - 1
        data = Segment(selector=0x10, limit=0xFFFFFFFF, type=0x3, db=1, g=1)
        gprs = {r: v & wmask for r, v in case.regs.items()}
        gprs.setdefault("rsp", STACK_TOP)
        state = RegisterState(rip=CODE_BASE + at, gprs=gprs, rflags=case.rflags, cs=cs,
                              ds=data, es=data, ss=data, fs=data, gs=data,
                              cr0=cr0, cr4=cr4, efer=efer)
        cpu = self.cpu
        cpu.set_state(state)
        nx = 16 if self.bits == 64 else 8
        cpu.xmm[:] = list(case.xmm[:nx]) + [0] * (16 - nx)
        cpu.x87.finit()
        for i, m in enumerate(case.mm):
            mmx_write(cpu.x87, i, m)
        mmx_enter(cpu.x87)
        cpu.mxcsr = case.mxcsr
        if setup is not None:      # a test's change to the state before the instruction
            setup(cpu)
        self.fault = NO_FAULT
        reason = cpu.run(1000)
        end = CODE_BASE + at + len(code) + 1
        if self.fault == NO_FAULT and (reason != "halt" or cpu.rip != end):
            raise AssertionError(f"{case.text}: emulator stopped ({reason}) at {cpu.rip:#x}")
        s = cpu.get_state()
        names = GPRS if self.bits == 64 else [_reg64(r) for r in GPRS32]
        regs = {r: s.gprs[r] & wmask for r in names}
        regs["rsp"] = s.gprs["rsp"] & wmask
        x = cpu.x87
        mm = [x.regs[i] & (2**64 - 1) for i in range(8)]
        tags = ~x.empty & 0xFF
        return SimdOutcome(code, regs, s.rflags, bytes(self.data[:MEM_SIZE]),
                           list(cpu.xmm[:nx]), mm, cpu.mxcsr, tags, self.fault)


def compare(case: SimdCase, host: SimdOutcome, emu: SimdOutcome,
            xmm_masks: dict[int, int] | None = None) -> list[str]:
    """Differences between host and emulator (empty: they agree). ``xmm_masks`` limits
    the compared bits of some registers (approximations: RCPPS/RSQRTPS)."""
    diffs = []
    if host.fault != emu.fault:
        diffs.append(f"fault: host {host.fault} emu {emu.fault}")
    for r in host.regs:
        if host.regs[r] != emu.regs[r]:
            diffs.append(f"{r}: host {host.regs[r]:#x} emu {emu.regs[r]:#x}")
    mask = (ARITH | 0x400) & ~undefined_mask(case)
    if (host.rflags ^ emu.rflags) & mask:
        diffs.append(f"rflags: host {host.rflags:#x} emu {emu.rflags:#x}")
    for i, (h, e) in enumerate(zip(host.xmm, emu.xmm, strict=True)):
        m = (xmm_masks or {}).get(i, (1 << 128) - 1)
        if (h ^ e) & m:
            diffs.append(f"xmm{i}: host {h:#034x} emu {e:#034x}")
    for i, (h, e) in enumerate(zip(host.mm, emu.mm, strict=True)):
        if h != e:
            diffs.append(f"mm{i}: host {h:#018x} emu {e:#018x}")
    if host.mxcsr != emu.mxcsr:
        diffs.append(f"mxcsr: host {host.mxcsr:#x} emu {emu.mxcsr:#x}")
    if host.tags != emu.tags:
        diffs.append(f"x87 tags: host {host.tags:#x} emu {emu.tags:#x}")
    if host.memory != emu.memory:
        at = next(i for i in range(MEM_SIZE) if host.memory[i] != emu.memory[i])
        diffs.append(f"memory differs first at +{at:#x}")
    return diffs
