"""External interrupts on the emu backend: taken from the controller seam
(``pending_vector``/``acknowledge``) only when IF=1, after the instruction that follows STI,
delivered through the IDT; HLT waits for them; with none possible, HLT ends the run."""

from __future__ import annotations

import pytest

from cpu.asmguest import Recorder, assemble, assembler_missing, entry_for, idt_gate
from x86vm.machine.irq import PendingInterrupt
from x86vm.machine.vm import Machine

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))

GUEST = """
    lidt idtr
""" + idt_gate(0x30, "handler", 32) + """
    mov $1, %eax
    out %eax, $0xe0          /* IF=0: the pending interrupt waits */
    sti
    mov $2, %eax             /* the one instruction the STI shadow protects */
    mov $3, %eax
    out %eax, $0xe0
    hlt                      /* nothing else pending: the run ends here */
    mov $4, %eax
    out %eax, $0xe0
    cli
    hlt
handler:
    push %eax
    mov %eax, %ecx
    mov $0x30, %eax
    out %eax, $0xe0
    mov %ecx, %eax
    out %eax, $0xe0          /* EAX at the interrupt: 2 (after exactly one instruction) */
    pop %eax
    iret
idtr: .word 0x7ff
    .long 0x30000
"""


def test_interrupt_after_the_sti_shadow_then_halt():
    code = assemble(GUEST, 32, 0x10000)
    ctl = PendingInterrupt()
    ctl.raise_vector(0x30)
    port = Recorder()
    with Machine(memory_size=2 << 20, backend="emu") as m:
        m.backend.set_interrupt_controller(ctl)
        m.pio.register(0xE0, 4, port, "report")
        m.memory.write(0x10000, code)
        result = m.run(entry_for(m.memory, 32, 0x10000), timeout=10)
    assert [v for _, _, _, v in port.log] == [1, 0x30, 2, 3]
    assert ctl.taken == [0x30]
    assert "halt" in result.reason


def test_halt_wakes_for_a_timer_and_guest_time_jumps_ahead():
    code = assemble("""
        lidt idtr
""" + idt_gate(0x30, "handler", 32) + """
        sti
        hlt
        mov $7, %eax
        out %eax, $0xe0
        cli
        hlt
    handler:
        iret
    idtr: .word 0x7ff
        .long 0x30000""", 32, 0x10000)
    ctl = PendingInterrupt()
    port = Recorder()
    with Machine(memory_size=2 << 20, backend="emu") as m:
        b = m.backend
        b.set_interrupt_controller(ctl)
        b.at(5_000_000, lambda: ctl.raise_vector(0x30))   # 5 ms of guest time
        m.pio.register(0xE0, 4, port, "report")
        m.memory.write(0x10000, code)
        m.run(entry_for(m.memory, 32, 0x10000), timeout=10)
        assert b.clock_ns() >= 5_000_000
        assert b.stats()["instructions"] < 100
    assert [v for _, _, _, v in port.log] == [7]
