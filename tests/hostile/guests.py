"""Hostile guests, assembled at test time: each attacks one class of issue 8 and never stops
by itself unless its entry says otherwise.

Every guest is a real-mode flat image (the flat loader puts it at 0x7C00, as a BIOS would a
boot sector), so the same bytes run on both backends. ``STATUS`` is what ``x86vm run
--timeout`` must end each with: 124 for a guest that runs until the timeout, the
isa-debug-exit status ``(value << 1) | 1`` for one that asks to stop.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from support.guest_asm import write_flat

BASE = 0x7C00
PROLOGUE = """.text
.code16
.globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7c00, %sp
"""

SOURCES: dict[str, str] = {
    # Class 1: fill every guest-fillable queue and never read it back.
    "i8042_flood": """
        1:  mov $0xf2, %al          /* keyboard "identify": 3 reply bytes per command */
            out %al, $0x60
            mov $0xd4, %al          /* next data byte to the mouse */
            out %al, $0x64
            mov $0xf2, %al
            out %al, $0x60
            mov $0xd2, %al          /* "write keyboard output buffer" */
            out %al, $0x64
            mov $0x41, %al
            out %al, $0x60
            jmp 1b
    """,
    "uart_flood": """
            mov $0x3f8 + 2, %dx     /* FCR: FIFOs on */
            mov $0x07, %al
            out %al, %dx
            mov $0x3f8, %dx
        1:  mov $0x41, %al
            out %al, %dx            /* THR, never waiting for THRE */
            jmp 1b
    """,
    "uart_loopback_flood": """
            mov $0x3f8 + 4, %dx     /* MCR: loopback, TX wired to our own receiver */
            mov $0x10, %al
            out %al, %dx
            mov $0x3f8 + 2, %dx
            mov $0x01, %al
            out %al, %dx
            mov $0x3f8, %dx
        1:  out %al, %dx            /* the RX FIFO overruns; nobody reads RBR */
            inc %al
            jmp 1b
    """,
    "debugcon_flood": """
        1:  mov $0x41, %al
            out %al, $0xe9          /* Bochs/QEMU debug console port, written forever */
            jmp 1b
    """,
    "port_scan": """
            xor %dx, %dx            /* write 0 to every port but the i8042 and the exit */
        1:  cmp $0x60, %dx
            jb 2f
            cmp $0x64, %dx
            jbe 3f
            cmp $0xf4, %dx
            je 3f
        2:  xor %al, %al
            out %al, %dx
            in %dx, %al
        3:  inc %dx
            jmp 1b
    """,
    "cmos_fw_cfg_walk": """
        1:  inc %cl
            mov %cl, %al
            out %al, $0x70          /* every CMOS index, read forever */
            in $0x71, %al
            mov $0x510, %dx
            mov %cx, %ax
            out %ax, %dx            /* every fw_cfg selector, read past its end */
            inc %dx
            in %dx, %al
            in %dx, %al
            jmp 1b
    """,
    # Spinning: nothing but the timeout ends it.
    "spin": "1: jmp 1b",
    "spin_cli_hlt": "cli\n1: hlt\njmp 1b",
    # Entering code at ever new addresses: the emu block cache and TLB see a new key each time.
    "new_code_every_time": """
            mov $0xcbcb, %ax        /* 0x20000..0x7ffff: 384 KiB of lret instructions */
            mov $0x2000, %dx
        2:  mov %dx, %es
            xor %di, %di
            mov $0x8000, %cx
            rep stosw
            add $0x1000, %dx
            cmp $0x8000, %dx
            jb 2b
        1:  lcall *far_target       /* a far call to seg:off, one more each time: every */
            incw far_target         /* entry is a new (address, rip) block for the emu */
            jnz 1b
            incw far_target + 2
            jmp 1b
        far_target: .word 0, 0x2000
    """,
    # Asks to stop: isa-debug-exit with value 0x21, status 0x43 (67).
    "debug_exit": "mov $0x21, %al\nout %al, $0xf4\n1: jmp 1b",
}

STATUS = {name: 124 for name in SOURCES} | {"debug_exit": 0x43, "spin_cli_hlt": 0}
"""124: ``--timeout``; a final ``hlt`` with interrupts off is a clean shutdown (0)."""


def missing_tools() -> list[str]:
    return [tool for tool in ("as", "ld") if shutil.which(tool) is None]


def assemble(name: str, outdir: Path) -> Path:
    """Build guest ``name`` into ``outdir/name.bin`` (GNU as, 16-bit, linked at 0x7C00)."""
    return write_flat(PROLOGUE + SOURCES[name] + "\n", Path(outdir) / f"{name}.bin", BASE)
