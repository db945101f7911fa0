"""Tiny guests from assembly text for the CPU system tests: assemble with GNU as, load at an
address, run on a Machine with a recording port and MMIO device."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from support.guest_asm import assemble_flat
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine.boot import load_image
from x86vm.machine.boot.state import (
    CR0_PE,
    LONG64_CODE,
    EntryState,
    TableRegister,
    flat_protected32,
    long_mode64,
    real_mode,
)
from x86vm.machine.vm import Machine

REPORT_PORT = 0xE0
MMIO_BASE = 0xFE000000
MMIO_SIZE = 0x1000
GDT_AT = 0x500
# null, 0x08 32-bit code, 0x10 64-bit code, 0x18 flat data
GDT = (0, 0x00CF9B000000FFFF, 0x00AF9B000000FFFF, 0x00CF93000000FFFF)


def assembler_missing() -> str | None:
    for tool in ("gcc", "objcopy"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def assemble(text: str, bits: int, origin: int) -> bytes:
    """Flat machine code of ``text`` (AT&T, entered at its start, label ``_start``) as if
    loaded at ``origin``."""
    return assemble_flat(f".globl _start\n_start:\n{text}", origin, bits)


def multiboot_elf(text: str, tmp: Path, link_at: int, bits: int = 32) -> bytes:
    """``text`` (AT&T, with its own Multiboot header and ``_start``) assembled and linked at
    ``link_at`` into ``tmp``/k.elf; 64-bit code is linked as ELF64 and converted to the ELF32
    a Multiboot loader takes. Returns the ELF's bytes."""
    (tmp / "g.S").write_text(text)
    if bits == 64:
        cmds = [["as", "--64", "-o", "g.o", "g.S"],
                ["ld", "-N", "-m", "elf_x86_64", "-Ttext", hex(link_at), "-e", "_start", "-o",
                 "g64", "g.o"],
                ["objcopy", "-O", "elf32-i386", "g64", "k.elf"]]
    else:
        cmds = [["as", "--32", "-o", "g.o", "g.S"],
                ["ld", "-m", "elf_i386", "-Ttext", hex(link_at), "-e", "_start", "-o", "k.elf",
                 "g.o"]]
    for cmd in cmds:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
    return (tmp / "k.elf").read_bytes()


def multiboot_serial(image: bytes, backend: str = "emu", *, firmware: bool = False,
                     **machine_options) -> tuple[int, str]:
    """Boot Multiboot ``image`` (command line "k.elf", as QEMU's -kernel gives it) on a PC
    board with debug-exit at 0xf4: the exit status and the serial output, to compare with
    guests.oracle.qemu_serial(). ``firmware``: with the board's boot options (BIOS tables,
    IVT) as ``x86vm run`` passes them. The run's reason is printed (shown on a failure)."""
    console = BufferConsole()
    with Machine(memory_size=128 << 20, backend=backend, **machine_options) as m:
        board = attach_pc_devices(m, console, debug_exit_port=0xF4)
        options = board.boot_options() if firmware else {}
        result = m.run(load_image(m.memory, image, "multiboot", cmdline="k.elf", **options),
                       timeout=30)
        board.close()
    print(f"{backend} run ended: {result.reason}")
    return result.status, bytes(console.output).decode("latin-1")


def idt_gate(vector: int, handler: str, bits: int, idt: str = "0x30000",
             selector: str | None = None) -> str:
    """Guest code pointing the interrupt gate (present, DPL 0) of ``vector`` in the IDT at
    ``idt`` at label ``handler`` through code segment ``selector`` (an immediate or a 16-bit
    register; by default this module's GDT's code segment): 8-byte gates in 32-bit code,
    16-byte gates in 64-bit code (SDM Vol. 3A §6.11, §6.14.1). Clobbers EAX/RAX."""
    selector = selector or ("$0x10" if bits == 64 else "$0x08")
    at = f"{idt} + {vector} * {16 if bits == 64 else 8}"
    lines = [f"lea {handler}(%rip), %rax" if bits == 64 else f"movl ${handler}, %eax",
             f"movw %ax, {at}", f"movw {selector}, {at} + 2", f"movw $0x8e00, {at} + 4",
             f"shr $16, {'%rax' if bits == 64 else '%eax'}", f"movw %ax, {at} + 6"]
    if bits == 64:
        lines += [f"movl $0, {at} + 8", f"movl $0, {at} + 12"]
    return "".join(f"        {line}\n" for line in lines)


_REPORT_REGISTERS = {  # bits: saved, value, shifted copy, counter, digit index, table load
    16: (("ax", "bx", "cx", "dx", "si"), "ax", "bx", "cx", "si", "mov {t}(%si), %al"),
    32: (("eax", "ebx", "ecx", "edx"), "eax", "ebx", "ecx", "eax", "mov {t}(%eax), %al"),
    64: (("rax", "rbx", "rcx", "rdx", "rsi"), "eax", "ebx", "ecx", "eax",
         "lea {t}(%rip), %rsi\n    mov (%rsi, %rax), %al"),
}


def serial_hex_report(bits: int, label: str = "report", wide: bool = False) -> str:
    """Guest routine ``label``: EAX (AX in 16-bit code; RAX with ``wide`` in 64-bit code) as
    eight (four, sixteen) lowercase hex digits and a newline on COM1 (port 0x3f8, written
    without polling LSR: QEMU and the emulated UART take every byte), every register
    preserved. For guests whose serial output is compared with QEMU's."""
    saved, value, shifted, counter, index, load = _REPORT_REGISTERS[bits]
    digits = 4 if bits == 16 else 8
    rotated = shifted
    if wide:
        assert bits == 64, "wide is RAX: 64-bit code only"
        value, rotated, digits = "rax", "rbx", 16
    table = f"{label}_digits"
    pushes = "".join(f"    push %{r}\n" for r in saved)
    pops = "".join(f"    pop %{r}\n" for r in reversed(saved))
    return f"""
{label}:
{pushes}    mov %{value}, %{rotated}
    mov ${digits}, %{counter}
    mov $0x3f8, %dx
{label}_digit:
    rol $4, %{rotated}
    mov %{shifted}, %{index}
    and $0xf, %{index}
    {load.format(t=table)}
    out %al, %dx
    loop {label}_digit
    mov $10, %al
    out %al, %dx
{pops}    ret
{table}: .ascii "0123456789abcdef"
"""


class Recorder:
    """A port or MMIO device that logs every access; reads return ``values`` in turn."""

    def __init__(self, values=()) -> None:
        self.log: list[tuple] = []
        self.values = list(values)

    def read(self, offset: int, size: int) -> int:
        v = self.values.pop(0) if self.values else 0
        self.log.append(("r", offset, size, v))
        return v

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("w", offset, size, value))


def gdt_entry(memory) -> TableRegister:
    for i, d in enumerate(GDT):
        memory.write_u64(GDT_AT + 8 * i, d)
    return TableRegister(GDT_AT, 8 * len(GDT) - 1)


def entry_for(memory, bits: int, rip: int, cr3: int = 0) -> EntryState:
    gdt = gdt_entry(memory)
    if bits == 16:
        return real_mode(0, rip, sp=0x7000)
    if bits == 32:
        e = flat_protected32(rip, gdt, rsp=0x70000)
        return replace(e, cs=replace(e.cs, selector=0x08), cr0=CR0_PE | 0x10)
    e = long_mode64(rip, gdt, cr3, rsp=0x70000)
    return replace(e, cs=replace(LONG64_CODE, selector=0x10))


def run_guest(backend: str, code: bytes, bits: int, origin: int, *, mmio_values=(),
              port_values=(), setup=None, memory_size=16 << 20):
    """Run until the guest halts; returns (RunResult, port recorder, MMIO recorder, machine
    state after the run)."""
    port, mmio = Recorder(port_values), Recorder(mmio_values)
    with Machine(memory_size=memory_size, backend=backend) as m:
        m.pio.register(REPORT_PORT, 4, port, "report")
        m.memory.add_mmio(MMIO_BASE, MMIO_SIZE, mmio, "recorder")
        m.memory.write(origin, code)
        entry = entry_for(m.memory, bits, origin)
        if setup is not None:
            entry = setup(m.memory, entry) or entry
        result = m.run(entry, timeout=20)
        state = m.backend.get_state() if hasattr(m.backend, "get_state") else None
    return result, port, mmio, state
