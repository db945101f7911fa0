"""A guest is untrusted input: random bytes executed in real, protected and long mode end in
an emulated fault, a triple fault, a halt or the timeout -- never an emulator error."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from cpu.asmguest import MMIO_BASE, Recorder, entry_for
from x86vm.machine.vm import Machine


@pytest.mark.parametrize("seed", range(12))
def test_random_code_never_breaks_the_emulator(seed):
    rng = random.Random(seed)
    bits = (16, 32, 64)[seed % 3]
    origin = 0x7C00 if bits == 16 else 0x10000
    with Machine(memory_size=4 << 20, backend="emu") as m:
        m.memory.add_mmio(MMIO_BASE, 0x1000, Recorder(), "recorder")
        m.memory.write(origin, rng.randbytes(4096))
        entry = entry_for(m.memory, bits, origin)
        if bits == 64:   # identity-map 4 MiB with 2 MiB pages
            for at, value in ((0x1000, 0x2003), (0x2000, 0x3003), (0x3000, 0x83),
                              (0x3008, 0x200083)):
                m.memory.write_u64(at, value)
            entry = replace(entry, cr3=0x1000)
        result = m.run(entry, timeout=0.3)
    assert result.status != 126, result.reason


def test_a_spinning_guest_stops_at_the_timeout():
    import time

    with Machine(memory_size=2 << 20, backend="emu") as m:
        m.memory.write(0x7C00, b"\xeb\xfe")          # 1: jmp 1b
        t0 = time.monotonic()
        result = m.run(entry_for(m.memory, 16, 0x7C00), timeout=0.3)
        elapsed = time.monotonic() - t0
    assert result.status == 124 and elapsed < 3, (result, elapsed)
