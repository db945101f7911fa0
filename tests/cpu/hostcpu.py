"""The host CPU as the oracle for instruction semantics (a gcc-built harness).

:func:`run_on_host` writes one assembly file holding every case: each case loads RFLAGS and
the general registers from a table, executes the instruction under test (assembled by GNU
as from its text), stores the registers and RFLAGS, and returns. A small C driver resets a
scratch memory area before each case and writes, per case, the instruction bytes, the
registers and flags after it, and the scratch memory. :func:`run_on_emu` runs the same bytes
from the same state on :class:`x86vm.cpu.core.Cpu`. The scratch memory and the test stack sit
at fixed addresses (linker ``--section-start``) so that register values may point into them.

Only the flags an instruction defines are compared: :data:`UNDEFINED_FLAGS` lists the rest
(SDM Vol. 2 "Flags Affected"; this host is AMD, whose undefined flags differ from Intel's).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from x86vm.cpu.core import Cpu
from x86vm.cpu.mmu import Ram
from x86vm.cpu.state import (
    CR0_PE,
    CR4_OSFXSR,
    CR4_OSXMMEXCPT,
    CR4_OSXSAVE,
    EFER_LMA,
    EFER_LME,
    RegisterState,
    Segment,
)

MEM_BASE = 0x10000000       # scratch memory the cases may address
MEM_SIZE = 0x1000
STACK_TOP = MEM_BASE + 0xE00    # inside the compared scratch memory
CODE_BASE = 0x400000        # where the emulator places case k (k * 32)
GPRS = ("rax", "rcx", "rdx", "rbx", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15")
GPRS32 = ("eax", "ecx", "edx", "ebx", "ebp", "esi", "edi")
ARITH = 0x8D5
CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800

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
class Outcome:
    code: bytes
    regs: dict[str, int]
    rflags: int
    memory: bytes


def harness_available() -> str | None:
    """None if gcc can build the harness here, else why not."""
    for tool in ("gcc",):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


_DRIVER = r"""
#include <stdint.h>
#include <string.h>
#include <unistd.h>
extern unsigned char testmem[];
extern const unsigned char testmem_init[];
extern void (*const cases[])(void);
extern const uintptr_t bounds[];
extern uintptr_t outs[];
extern const long ncases;
int main(void) {
    for (long k = 0; k < ncases; k++) {
        memcpy(testmem, testmem_init + k * MEMSZ, MEMSZ);
        cases[k]();
        uint64_t len = bounds[2 * k + 1] - bounds[2 * k];
        write(1, &len, 8);
        write(1, (const void *)bounds[2 * k], len);
        write(1, &outs[NREC * k], NREC * sizeof(uintptr_t));
        write(1, testmem, MEMSZ);
    }
    return 0;
}
"""


def _case_asm(k: int) -> list[str]:
    load = ["popfq"] + [f"pop %{r}" for r in GPRS] + ["mov (%rsp), %rsp"]
    store = [f"mov %rsp, outs+{8 * (17 * k + 16)}(%rip)",
             f"lea outs+{8 * (17 * k + 16)}(%rip), %rsp"]
    store += [f"push %{r}" for r in reversed(GPRS)] + ["pushfq"]
    return [f"case_{k}:", "push %rbx", "push %rbp", "push %r12", "push %r13", "push %r14",
            "push %r15", "mov %rsp, saved_rsp(%rip)", f"lea ins+{8 * 17 * k}(%rip), %rsp",
            *load, f"i_{k}:", "CASE_TEXT", f"e_{k}:", *store, "cld", "mov saved_rsp(%rip), %rsp",
            "pop %r15", "pop %r14", "pop %r13", "pop %r12", "pop %rbp", "pop %rbx", "ret"]


def _case_asm32(k: int) -> list[str]:
    load = ["popfl"] + [f"pop %{r}" for r in GPRS32] + ["mov (%esp), %esp"]
    store = [f"mov %esp, outs+{4 * (9 * k + 8)}", f"lea outs+{4 * (9 * k + 8)}, %esp"]
    store += [f"push %{r}" for r in reversed(GPRS32)] + ["pushfl"]
    return [f"case_{k}:", "push %ebx", "push %ebp", "push %esi", "push %edi",
            "mov %esp, saved_rsp", f"lea ins+{4 * 9 * k}, %esp", *load, f"i_{k}:",
            "CASE_TEXT", f"e_{k}:", *store, "cld", "mov saved_rsp, %esp", "pop %edi",
            "pop %esi", "pop %ebp", "pop %ebx", "ret"]


def run_on_host(cases: list[Case], bits: int = 64) -> list[Outcome]:
    """Run ``cases`` natively: 64-bit code, or 32-bit (``gcc -m32``) for ``bits=32``."""
    word = ".quad" if bits == 64 else ".long"
    regs = GPRS if bits == 64 else GPRS32
    nrec = len(regs) + 2
    template = _case_asm if bits == 64 else _case_asm32
    lines = [".text"]
    for k, case in enumerate(cases):
        lines += [case.text if line == "CASE_TEXT" else line for line in template(k)]
    lines += [".section .rodata", ".align 8", ".globl cases, bounds, ncases, testmem_init",
              "cases:"] + [f"{word} case_{k}" for k in range(len(cases))]
    lines += ["bounds:"] + [f"{word} i_{k}, e_{k}" for k in range(len(cases))]
    lines += [f"ncases: {word} {len(cases)}", "testmem_init:"]
    for case in cases:
        lines.append(".byte " + ",".join(str(b) for b in case.memory))
    lines += [".data", ".align 8", f"saved_rsp: {word} 0", "ins:"]
    wmask = (1 << bits) - 1
    for case in cases:
        values = [case.rflags] + [case.regs.get(_reg64(r), 0) & wmask for r in regs]
        values.append(case.regs.get("rsp", STACK_TOP))
        lines.append(f"{word} " + ",".join(str(v) for v in values))
    lines += [".globl outs", "outs:", f".skip {nrec * bits // 8 * len(cases)}",
              ".section .testmem, \"aw\"", ".globl testmem", "testmem:",
              f".skip {0x2000}"]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "cases.S").write_text("\n".join(lines) + "\n")
        (t / "driver.c").write_text(_DRIVER)
        proc = subprocess.run(
            ["gcc", "-O1", "-no-pie", f"-m{bits}", f"-DMEMSZ={MEM_SIZE}", f"-DNREC={nrec}",
             "-o", str(t / "h"),
             str(t / "driver.c"), str(t / "cases.S"),
             f"-Wl,--section-start=.testmem={MEM_BASE:#x}"], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        proc = subprocess.run([str(t / "h")], capture_output=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"harness died with status {proc.returncode}")
    data = proc.stdout
    pos = 0
    results = []
    for _ in cases:
        (n,) = struct.unpack_from("<Q", data, pos)
        code = data[pos + 8:pos + 8 + n]
        pos += 8 + n
        fmt = f"<{nrec}{'Q' if bits == 64 else 'I'}"
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        mem = data[pos:pos + MEM_SIZE]
        pos += MEM_SIZE
        out = {_reg64(r): v for r, v in zip(regs, vals[1:-1], strict=True)}
        out["rsp"] = vals[-1]
        results.append(Outcome(code, out, vals[0], mem))
    return results


def _reg64(name: str) -> str:
    return "r" + name[1:] if name.startswith("e") else name


class Emu:
    """A 64-bit CPU over scratch RAM at the harness's addresses (paging off, CPL 0; CR4 and
    XCR0 as Linux sets them for user mode: OSFXSR, OSXMMEXCPT, OSXSAVE; x87|SSE)."""

    def __init__(self, bits: int = 64) -> None:
        self.bits = bits
        self.code = bytearray(0x100000)
        self.data = bytearray(0x2000)
        self.cpu = Cpu(Ram([(CODE_BASE, CODE_BASE + len(self.code), self.code),
                            (MEM_BASE, MEM_BASE + len(self.data), self.data)]))
        self.next = 0

    def run(self, case: Case, code: bytes) -> Outcome:
        at = self.next
        self.next += 32
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
                              ds=data, es=data, ss=data, fs=data, gs=data, cr0=CR0_PE,
                              cr4=CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE, efer=efer)
        cpu = self.cpu
        cpu.set_state(state)
        cpu.xcr0 = 3        # x87 | SSE enabled, as Linux does (cpu/xsave.py)
        reason = cpu.run(1000)
        if reason != "halt" or cpu.rip != CODE_BASE + at + len(code) + 1:
            raise AssertionError(f"{case.text}: emulator stopped ({reason}) at {cpu.rip:#x}")
        s = cpu.get_state()
        names = GPRS if self.bits == 64 else [_reg64(r) for r in GPRS32]
        regs = {r: s.gprs[r] & wmask for r in names}
        regs["rsp"] = s.gprs["rsp"] & wmask
        return Outcome(code, regs, s.rflags, bytes(self.data[:MEM_SIZE]))


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


def compare(case: Case, host: Outcome, emu: Outcome) -> list[str]:
    """Differences between the host's and the emulator's results (empty: they agree)."""
    diffs = []
    for r in host.regs:
        if host.regs[r] != emu.regs[r]:
            diffs.append(f"{r}: host {host.regs[r]:#x} emu {emu.regs[r]:#x}")
    mask = (ARITH | 0x400) & ~undefined_mask(case)
    if (host.rflags ^ emu.rflags) & mask:
        diffs.append(f"rflags: host {host.rflags:#x} emu {emu.rflags:#x} "
                     f"(compared {mask:#x})")
    if host.memory != emu.memory:
        at = next(i for i in range(MEM_SIZE) if host.memory[i] != emu.memory[i])
        diffs.append(f"memory differs first at +{at:#x}")
    return diffs
