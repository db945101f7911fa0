"""The host CPU as the oracle for instruction semantics (a gcc-built harness).

:func:`run_on_host` writes one assembly file holding every case: each case loads RFLAGS and
the general registers from a table — a :class:`SimdCase` first XMM0-15 (XMM0-7 in 32-bit
code), MM0-7 and MXCSR —, executes the instruction under test (assembled by GNU as from its
text), stores the registers and RFLAGS (and the SIMD state with the x87 tag word), and
returns. A small C driver resets a scratch memory area before each case and writes, per case,
the instruction bytes, the registers and flags after it, the scratch memory, the SIMD state
and the vector of a fault. A fault (#GP for a misaligned MOVDQA, #XM for an unmasked SIMD
exception, #UD, #DE, #MF) is caught by a signal handler on an alternate stack: it records the
vector (``REG_TRAPNO``) and resumes at the store code, so the registers and memory are those
the fault left. The scratch memory and the test stack sit at fixed addresses (linker
``--section-start``) so that register values may point into them.

:class:`Emu` runs the same bytes from the same state on :class:`x86vm.cpu.core.Cpu`, with the
control registers Linux gives user space, and records the vector of the exception it would
deliver. :func:`compare` compares only the flags an instruction defines:
:data:`UNDEFINED_FLAGS` lists the rest (SDM Vol. 2 "Flags Affected"; this host is AMD, whose
undefined flags differ from Intel's).
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from x86vm.cpu.core import Cpu
from x86vm.cpu.mmu import Ram
from x86vm.cpu.state import (
    CR0_MP,
    CR0_NE,
    CR0_PE,
    CR4_OSFXSR,
    CR4_OSXMMEXCPT,
    CR4_OSXSAVE,
    EFER_LMA,
    EFER_LME,
    RegisterState,
    Segment,
)
from x86vm.cpu.x87 import mmx_enter, mmx_write

MEM_BASE = 0x10000000       # scratch memory the cases may address
MEM_SIZE = 0x1000
STACK_TOP = MEM_BASE + 0xE00    # inside the compared scratch memory
CODE_BASE = 0x400000        # where the emulator places case k (k * 32)
GPRS = ("rax", "rcx", "rdx", "rbx", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15")
GPRS32 = ("eax", "ecx", "edx", "ebx", "ebp", "esi", "edi")
ARITH = 0x8D5
CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800
NO_FAULT = 0xFF
SIMD_IN = 16 * 16 + 8 * 8 + 8      # xmm0-15, mm0-7, mxcsr (+pad)
SIMD_OUT = SIMD_IN + 32            # + FNSTENV image (28 bytes, +pad)
# what Linux runs user space with: CR0.MP/NE, CR4.OSFXSR/OSXMMEXCPT/OSXSAVE (XCR0 = x87|SSE)
LINUX_CR0 = CR0_PE | CR0_MP | CR0_NE
LINUX_CR4 = CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE

# flags an instruction leaves undefined (SDM Vol. 2, "Flags Affected" of each instruction)
UNDEFINED_FLAGS = {
    "mul": SF | ZF | AF | PF, "imul": SF | ZF | AF | PF, "div": ARITH, "idiv": ARITH,
    "and": AF, "or": AF, "xor": AF, "test": AF,
    "bt": OF | SF | AF | PF, "bts": OF | SF | AF | PF, "btr": OF | SF | AF | PF,
    "btc": OF | SF | AF | PF, "bsf": CF | OF | SF | AF | PF, "bsr": CF | OF | SF | AF | PF,
    "tzcnt": OF | SF | AF | PF, "lzcnt": OF | SF | AF | PF,
    "daa": OF, "das": OF, "aaa": OF | SF | ZF | PF, "aas": OF | SF | ZF | PF,
    "aam": OF | AF | CF, "aad": OF | AF | CF,
    "andn": AF | PF, "bextr": AF | SF | PF, "blsi": AF | PF, "blsmsk": AF | PF,
    "blsr": AF | PF, "bzhi": AF | PF,
}
SHIFTS = ("shl", "sal", "shr", "sar")
ROTATES = ("rol", "ror", "rcl", "rcr")


@dataclass
class Case:
    """One instruction (assembly text, AT&T) and the registers/flags/memory it starts with."""

    text: str
    regs: dict[str, int]
    rflags: int = 0x202
    memory: bytes = b"\0" * MEM_SIZE


@dataclass
class SimdCase(Case):
    """A case that also starts from XMM/MMX registers and MXCSR."""

    xmm: list[int] = field(default_factory=lambda: [0] * 16)
    mm: list[int] = field(default_factory=lambda: [0] * 8)
    mxcsr: int = 0x1F80


@dataclass
class Outcome:
    code: bytes
    regs: dict[str, int]
    rflags: int
    memory: bytes
    fault: int = NO_FAULT      # exception vector


@dataclass(kw_only=True)
class SimdOutcome(Outcome):
    xmm: list[int]
    mm: list[int]
    mxcsr: int
    tags: int        # abridged: bit i set = physical register i not empty


def draw_cases(classes: Mapping[str, Callable[[random.Random], Case]], size: list[int],
               name: str, count: int, seed: int, bits: int) -> list[Case]:
    """``count`` cases of class ``name`` for ``bits``-bit code, from one random stream per
    class, seed and code size (the same cases every run); meanwhile the generators read the
    code size from the one-item list ``size``."""
    rng = random.Random(f"{name}-{seed}-{bits}")
    size[0] = bits
    try:
        return [classes[name](rng) for _ in range(count)]
    finally:
        size[0] = 64


def harness_available() -> str | None:
    """None if gcc can build the harness here, else why not."""
    return None if shutil.which("gcc") else "gcc is not installed"


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


@dataclass(frozen=True)
class _Width:
    """What the case code differs in between 64- and 32-bit code."""

    gprs: tuple[str, ...]
    callee_saved: tuple[str, ...]
    sp: str
    suffix: str        # of PUSHF/POPF
    rip: str           # how a label is addressed
    word: int
    directive: str
    xmms: int


_WIDTHS = {
    64: _Width(GPRS, ("rbx", "rbp", "r12", "r13", "r14", "r15"), "%rsp", "q", "(%rip)", 8,
               ".quad", 16),
    32: _Width(GPRS32, ("ebx", "ebp", "esi", "edi"), "%esp", "l", "", 4, ".long", 8),
}


def _simd_load(k: int, w: _Width) -> list[str]:
    r = "%rax" if w.word == 8 else "%eax"
    return [f"lea simd_in+{SIMD_IN * k}{w.rip}, {r}",
            *[f"movdqu {16 * i}({r}), %xmm{i}" for i in range(w.xmms)],
            *[f"movq {256 + 8 * i}({r}), %mm{i}" for i in range(8)],
            f"ldmxcsr 320({r})"]


def _simd_store(k: int, w: _Width) -> list[str]:
    """Store the SIMD state, then give the C driver a clean x87/MMX state and MXCSR."""
    r = "%rax" if w.word == 8 else "%eax"
    return [f"lea simd_out+{SIMD_OUT * k}{w.rip}, {r}",
            f"fnstenv 328({r})",      # before MOVQ from MMi makes every tag valid
            *[f"movdqu %xmm{i}, {16 * i}({r})" for i in range(w.xmms)],
            *[f"movq %mm{i}, {256 + 8 * i}({r})" for i in range(8)],
            f"stmxcsr 320({r})", "fninit", "emms", "push $0x1f80", f"ldmxcsr ({w.sp})",
            f"pop {r}"]


def _case_asm(k: int, case: Case, w: _Width) -> list[str]:
    """Case k: save the C registers, load the case's state, run it, store the results."""
    nrec = len(w.gprs) + 2
    out_sp = f"outs+{w.word * (nrec * k + nrec - 1)}{w.rip}"
    simd = isinstance(case, SimdCase)
    return [f"case_{k}:", *[f"push %{r}" for r in w.callee_saved],
            f"mov {w.sp}, saved_rsp{w.rip}", *(_simd_load(k, w) if simd else ()),
            f"lea ins+{w.word * nrec * k}{w.rip}, {w.sp}", f"popf{w.suffix}",
            *[f"pop %{r}" for r in w.gprs], f"mov ({w.sp}), {w.sp}",
            f"i_{k}:", case.text, f"e_{k}:",
            f"mov {w.sp}, {out_sp}", f"lea {out_sp}, {w.sp}",
            *[f"push %{r}" for r in reversed(w.gprs)], f"pushf{w.suffix}",
            "cld", f"mov saved_rsp{w.rip}, {w.sp}", *(_simd_store(k, w) if simd else ()),
            *[f"pop %{r}" for r in reversed(w.callee_saved)], "ret"]


def _simd_bytes(case: SimdCase) -> bytes:
    out = b"".join(x.to_bytes(16, "little") for x in case.xmm)
    out += b"".join(m.to_bytes(8, "little") for m in case.mm)
    return out + struct.pack("<II", case.mxcsr, 0)


def _assembly(cases: Sequence[Case], bits: int, simd: bool) -> str:
    w = _WIDTHS[bits]
    lines = [".text"]
    for k, case in enumerate(cases):
        lines += _case_asm(k, case, w)
    lines += [".section .rodata", ".align 16", ".globl cases, bounds, ncases, testmem_init",
              "cases:"] + [f"{w.directive} case_{k}" for k in range(len(cases))]
    lines += ["bounds:"] + [f"{w.directive} i_{k}, e_{k}" for k in range(len(cases))]
    lines += [f"ncases: {w.directive} {len(cases)}", "testmem_init:"]
    lines += [".byte " + ",".join(str(b) for b in case.memory) for case in cases]
    if simd:
        lines += [".align 16", "simd_in:"]
        lines += [".byte " + ",".join(str(b) for b in _simd_bytes(case)) for case in cases]
    lines += [".data", ".align 16", f"saved_rsp: {w.directive} 0", "ins:"]
    wmask = (1 << bits) - 1
    for case in cases:
        values = [case.rflags] + [case.regs.get(_reg64(r), 0) & wmask for r in w.gprs]
        values.append(case.regs.get("rsp", STACK_TOP))
        lines.append(f"{w.directive} " + ",".join(str(v) for v in values))
    lines += [".globl outs, simd_out", "outs:", f".skip {(len(w.gprs) + 2) * w.word * len(cases)}",
              ".align 16", "simd_out:", f".skip {SIMD_OUT * len(cases) if simd else 0}",
              ".section .testmem, \"aw\"", ".globl testmem", "testmem:", f".skip {0x2000}"]
    return "\n".join(lines) + "\n"


def run_on_host(cases: Sequence[Case], bits: int = 64) -> list[Outcome]:
    """Run ``cases`` natively: 64-bit code, or 32-bit (``gcc -m32``) for ``bits=32``. The
    cases are all :class:`SimdCase` (giving :class:`SimdOutcome`) or none is."""
    simd = any(isinstance(c, SimdCase) for c in cases)
    if simd and not all(isinstance(c, SimdCase) for c in cases):
        raise ValueError("SIMD and other cases run in separate harnesses")
    w = _WIDTHS[bits]
    nrec = len(w.gprs) + 2
    simd_out = SIMD_OUT if simd else 0
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "cases.S").write_text(_assembly(cases, bits, simd))
        (t / "driver.c").write_text(_DRIVER)
        proc = subprocess.run(
            ["gcc", "-O1", "-no-pie", f"-m{bits}", f"-DMEMSZ={MEM_SIZE}", f"-DNREC={nrec}",
             f"-DSIMDOUT={simd_out}", "-o", str(t / "h"), str(t / "driver.c"),
             str(t / "cases.S"), f"-Wl,--section-start=.testmem={MEM_BASE:#x}"],
            capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        proc = subprocess.run([str(t / "h")], capture_output=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(f"harness died with status {proc.returncode}")
    data = proc.stdout
    record = struct.Struct(f"<{nrec}{'Q' if bits == 64 else 'I'}")
    pos = 0
    results: list[Outcome] = []
    for _ in cases:
        (n,) = struct.unpack_from("<Q", data, pos)
        code = data[pos + 8:pos + 8 + n]
        pos += 8 + n
        vals = record.unpack_from(data, pos)
        pos += record.size
        mem = data[pos:pos + MEM_SIZE]
        pos += MEM_SIZE
        simd_state = data[pos:pos + simd_out]
        pos += simd_out
        fault = data[pos]
        pos += 1
        regs = {_reg64(r): v for r, v in zip(w.gprs, vals[1:-1], strict=True)}
        regs["rsp"] = vals[-1]
        out = Outcome(code, regs, vals[0], mem, fault)
        results.append(_host_simd(out, simd_state, w.xmms) if simd else out)
    return results


def _host_simd(out: Outcome, simd: bytes, nx: int) -> SimdOutcome:
    xmm = [int.from_bytes(simd[16 * i:16 * i + 16], "little") for i in range(nx)]
    mm = [int.from_bytes(simd[256 + 8 * i:264 + 8 * i], "little") for i in range(8)]
    (mxcsr,) = struct.unpack_from("<I", simd, 320)
    (ftw,) = struct.unpack_from("<H", simd, 328 + 8)
    tags = sum(1 << i for i in range(8) if (ftw >> (2 * i)) & 3 != 3)
    return SimdOutcome(**vars(out), xmm=xmm, mm=mm, mxcsr=mxcsr, tags=tags)


def _reg64(name: str) -> str:
    return "r" + name[1:] if name.startswith("e") else name


class Emu:
    """The vCPU over scratch RAM at the harness's addresses (paging off, CPL 0), recording
    the vector of each exception instead of delivering it."""

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

    def run(self, case: Case, code: bytes, cr0: int = LINUX_CR0, cr4: int = LINUX_CR4,
            setup: Callable[[Cpu], object] | None = None) -> Outcome:
        """Run ``code`` (the host's bytes of ``case``) from the case's state; ``setup``
        changes the state before the instruction."""
        at = self.next
        self.next = at + 32 if at + 64 <= len(self.code) else 0
        self.code[at:at + len(code) + 1] = code + b"\xf4"   # hlt
        self.data[:MEM_SIZE] = case.memory
        wmask = (1 << self.bits) - 1
        if self.bits == 64:
            cs = Segment(selector=8, limit=0xFFFFFFFF, type=0xB, l=1, g=1)
            efer = EFER_LME | EFER_LMA
        else:
            cs = Segment(selector=8, limit=0xFFFFFFFF, type=0xB, db=1, g=1)
            efer = 0
        data = Segment(selector=0x10, limit=0xFFFFFFFF, type=0x3, db=1, g=1)
        gprs = {r: v & wmask for r, v in case.regs.items()}
        gprs.setdefault("rsp", STACK_TOP)
        cpu = self.cpu
        cpu.set_state(RegisterState(rip=CODE_BASE + at, gprs=gprs, rflags=case.rflags, cs=cs,
                                    ds=data, es=data, ss=data, fs=data, gs=data, cr0=cr0,
                                    cr4=cr4, efer=efer))
        cpu.xcr0 = 3        # x87 | SSE enabled, as Linux does (cpu/xsave.py)
        nx = _WIDTHS[self.bits].xmms
        if isinstance(case, SimdCase):
            cpu.xmm[:] = list(case.xmm[:nx]) + [0] * (16 - nx)
            cpu.x87.finit()
            for i, m in enumerate(case.mm):
                mmx_write(cpu.x87, i, m)
            mmx_enter(cpu.x87)
            cpu.mxcsr = case.mxcsr
        if setup is not None:
            setup(cpu)
        self.fault = NO_FAULT
        reason = cpu.run(1000)
        if self.fault == NO_FAULT and (reason != "halt"
                                       or cpu.rip != CODE_BASE + at + len(code) + 1):
            raise AssertionError(f"{case.text}: emulator stopped ({reason}) at {cpu.rip:#x}")
        s = cpu.get_state()
        names = GPRS if self.bits == 64 else [_reg64(r) for r in GPRS32]
        regs = {r: s.gprs[r] & wmask for r in names}
        regs["rsp"] = s.gprs["rsp"] & wmask
        out = Outcome(code, regs, s.rflags, bytes(self.data[:MEM_SIZE]), self.fault)
        if not isinstance(case, SimdCase):
            return out
        x = cpu.x87
        return SimdOutcome(**vars(out), xmm=list(cpu.xmm[:nx]),
                           mm=[x.regs[i] & (2**64 - 1) for i in range(8)], mxcsr=cpu.mxcsr,
                           tags=~x.empty & 0xFF)


def undefined_mask(case: Case) -> int:
    """Flags not to compare for ``case`` (its mnemonic and, for shifts, its count)."""
    if ";" in case.text:   # a sequence: only logic instructions leave a flag (AF) undefined
        names = [part.split()[0] for part in case.text.split(";")]
        logic = any(n.rstrip("bwlq") in ("and", "or", "xor", "test") for n in names)
        return AF if logic else 0
    word = case.text.split()[0]
    for full, mask in UNDEFINED_FLAGS.items():
        if word in (full, full + "b", full + "w", full + "l", full + "q"):
            return mask
    base, suffix = word[:-1], word[-1]
    if suffix not in "bwlq" or base not in SHIFTS + ROTATES + ("shld", "shrd"):
        return 0          # (rorx, shlx... leave the flags alone)
    bits = {"b": 8, "w": 16, "l": 32, "q": 64}[suffix]
    count = _count(case, bits)
    if base in ROTATES:
        return OF if count != 1 else 0
    mask = AF if count else 0
    if count != 1:
        mask |= OF
    if base in ("shld", "shrd") and count > bits:
        mask |= CF
    return mask


def _count(case: Case, bits: int) -> int:
    """The masked shift count of a shift/rotate case (immediate, implicit 1, or CL)."""
    ops = case.text.split(None, 1)[1] if " " in case.text else ""
    if "," not in ops:          # the one-operand form shifts by 1
        raw = 1
    elif ops.startswith("%cl"):
        raw = case.regs.get("rcx", 0) & 0xFF
    elif ops.startswith("$") and ops.count(",") >= 1:
        raw = int(ops[1:].split(",")[0], 0)
    else:
        raw = 1
    return raw & (0x3F if bits == 64 else 0x1F)


def compare(case: Case, host: Outcome, emu: Outcome,
            xmm_masks: dict[int, int] | None = None) -> list[str]:
    """Differences between the host's and the emulator's results (empty: they agree).
    ``xmm_masks`` limits the compared bits of some XMM registers (approximations such as
    RCPPS/RSQRTPS)."""
    diffs = []
    if host.fault != emu.fault:
        diffs.append(f"fault: host {host.fault} emu {emu.fault}")
    for r in host.regs:
        if host.regs[r] != emu.regs[r]:
            diffs.append(f"{r}: host {host.regs[r]:#x} emu {emu.regs[r]:#x}")
    mask = (ARITH | 0x400) & ~undefined_mask(case)
    if (host.rflags ^ emu.rflags) & mask:
        diffs.append(f"rflags: host {host.rflags:#x} emu {emu.rflags:#x} "
                     f"(compared {mask:#x})")
    if isinstance(host, SimdOutcome) and isinstance(emu, SimdOutcome):
        diffs += _compare_simd(host, emu, xmm_masks or {})
    if host.memory != emu.memory:
        at = next(i for i in range(MEM_SIZE) if host.memory[i] != emu.memory[i])
        diffs.append(f"memory differs first at +{at:#x}")
    return diffs


def _compare_simd(host: SimdOutcome, emu: SimdOutcome, xmm_masks: dict[int, int]
                  ) -> list[str]:
    diffs = []
    for i, (h, e) in enumerate(zip(host.xmm, emu.xmm, strict=True)):
        if (h ^ e) & xmm_masks.get(i, (1 << 128) - 1):
            diffs.append(f"xmm{i}: host {h:#034x} emu {e:#034x}")
    for i, (h, e) in enumerate(zip(host.mm, emu.mm, strict=True)):
        if h != e:
            diffs.append(f"mm{i}: host {h:#018x} emu {e:#018x}")
    if host.mxcsr != emu.mxcsr:
        diffs.append(f"mxcsr: host {host.mxcsr:#x} emu {emu.mxcsr:#x}")
    if host.tags != emu.tags:
        diffs.append(f"x87 tags: host {host.tags:#x} emu {emu.tags:#x}")
    return diffs
