"""Every encoding in the SIMD opcode space (0F xx, 0F 38 xx, 0F 3A xx under no/66/F2/F3 and
REX.W prefixes, register and memory ModR/M forms) runs on the emulator from a random state
and ends in a retired instruction or a guest exception — never a Python error in the
monitor (a guest is untrusted input)."""

from __future__ import annotations

import random

from cpu.hostcpu import MEM_BASE, Emu, SimdCase
from x86vm.isa import decode

PREFIXES = (b"", b"\x66", b"\xf2", b"\xf3", b"\x66\x48", b"\x48", b"\xf2\x48", b"\xf3\x48")
ESCAPES = (b"\x0f", b"\x0f\x38", b"\x0f\x3a")
MODRMS = (0xCA, 0x01, 0x41)     # register, [rcx], [rcx+disp8]


def test_every_simd_encoding_ends_cleanly():
    rng = random.Random(3)
    emu = Emu(64)
    ran = 0
    for pfx in PREFIXES:
        for esc in ESCAPES:
            for op in range(256):
                for modrm in MODRMS:
                    code = pfx + esc + bytes([op, modrm, rng.randrange(256)])
                    insn = decode(code + b"\x90" * 8, 0, address=0, mode=64)
                    if insn.kind != "insn" or insn.spec is None or insn.spec.branch:
                        continue
                    if insn.mnemonic in ("syscall", "sysret", "sysenter", "sysexit", "hlt",
                                         "rdmsr", "wrmsr", "invd", "wbinvd"):
                        continue
                    regs = {r: rng.getrandbits(64) for r in ("rax", "rdx", "rsi", "rdi",
                                                             "rbp", "r8", "r9")}
                    regs["rcx"] = MEM_BASE + 0x400 + rng.randrange(0, 64)
                    case = SimdCase(insn.mnemonic, regs, 0x202, rng.randbytes(0x1000),
                                    [rng.getrandbits(128) for _ in range(16)],
                                    [rng.getrandbits(64) for _ in range(8)],
                                    0x1F80 | rng.randrange(0x8000) & ~0x1F80)
                    body = code[:insn.length]
                    try:
                        emu.run(case, body)
                    except AssertionError as exc:    # stopped for the monitor: fine
                        assert "emulator stopped" in str(exc)
                    ran += 1
    assert ran > 3000
