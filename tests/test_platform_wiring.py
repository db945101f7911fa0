"""The board's Python platform on a real machine: attach_pc_devices builds the chipset when
the machine has no in-kernel irqchip, gives devices their IRQ lines from it and hands the vCPU
its interrupt controller and local APIC. Small real-mode guests (assembled with binutils)
count timer interrupts delivered through the 8259 (PIT), the local APIC (x2APIC timer, MSRs),
and COM1's receive interrupt, then report the count through isa-debug-exit (status = 2n+1).
"""

from __future__ import annotations

import pytest

from support.backends import PLATFORMS
from support.guest_asm import assemble_flat
from x86vm.devices.chipset import Chipset
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine import vm
from x86vm.machine.boot import state as boot_state

pytestmark = pytest.mark.oracle("binutils")

LOAD = 0x7C00

PROLOGUE = """
.code16
.globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7000, %sp
"""

PIC_INIT = """
    mov $0x11, %al; out %al, $0x20; out %al, $0xA0      # ICW1: edge, cascade, ICW4
    mov $0x20, %al; out %al, $0x21                     # ICW2: IRQ 0-7 -> 0x20-0x27
    mov $0x28, %al; out %al, $0xA1                     # IRQ 8-15 -> 0x28-0x2F
    mov $0x04, %al; out %al, $0x21                     # ICW3: slave on IR2
    mov $0x02, %al; out %al, $0xA1
    mov $0x01, %al; out %al, $0x21; out %al, $0xA1     # ICW4: 8086 mode
"""

WAIT_AND_EXIT = """
    sti
1:  hlt
    cmpw $5, count
    jb 1b
    cli
    mov $5, %al                 # five arrived: on the host clock (KVM) a sixth may come
    out %al, $0xF4              # between the wake-up and the compare, so not the count
2:  hlt
    jmp 2b
count: .word 0
"""

PIT_GUEST = PROLOGUE + """
    movw $irq0, 0x20*4
    movw $0, 0x20*4+2
""" + PIC_INIT + """
    mov $0xFE, %al; out %al, $0x21                     # only IRQ 0
    mov $0xFF, %al; out %al, $0xA1
    mov $0x34, %al; out %al, $0x43                     # counter 0, LSB/MSB, mode 2
    mov $0xA9, %al; out %al, $0x40                     # 1193 = 1 ms
    mov $0x04, %al; out %al, $0x40
""" + WAIT_AND_EXIT + """
irq0:
    incw %cs:count
    push %ax
    mov $0x20, %al; out %al, $0x20                     # non-specific EOI
    pop %ax
    iret
"""

X2APIC_GUEST = PROLOGUE + """
    movw $apic_timer, 0x30*4
    movw $0, 0x30*4+2
    mov $0x1B, %ecx; rdmsr                             # IA32_APIC_BASE
    cmp $0xFEE00900, %eax
    jne bad
    or $0xC00, %eax; wrmsr                             # x2APIC mode
    mov $0x80F, %ecx; mov $0x1FF, %eax; xor %edx, %edx; wrmsr   # SVR: enabled
    mov $0x83E, %ecx; mov $0x0B, %eax; wrmsr           # divide by 1
    mov $0x832, %ecx; mov $0x20030, %eax; wrmsr        # LVT timer: periodic, vector 0x30
    mov $0x838, %ecx; mov $200000, %eax; wrmsr         # every 200 us
    mov $0x803, %ecx; rdmsr                            # version (x2APIC MSR)
    cmp $0x00050014, %eax
    jne bad
""" + WAIT_AND_EXIT + """
bad:
    mov $0x7F, %al
    out %al, $0xF4
apic_timer:
    incw %cs:count
    push %ax; push %cx; push %dx
    mov $0x80B, %ecx; xor %eax, %eax; xor %edx, %edx; wrmsr     # EOI
    pop %dx; pop %cx; pop %ax
    iret
"""

COM1_GUEST = PROLOGUE + """
    movw $irq4, 0x24*4
    movw $0, 0x24*4+2
""" + PIC_INIT + """
    mov $0xEF, %al; out %al, $0x21                     # only IRQ 4
    mov $0xFF, %al; out %al, $0xA1
    mov $0x3FC, %dx; mov $0x08, %al; out %al, %dx      # MCR: OUT2 gates the IRQ
    mov $0x3F9, %dx; mov $0x01, %al; out %al, %dx      # IER: received data available
""" + WAIT_AND_EXIT + """
irq4:                                                  # count every byte received
    push %ax; push %dx
3:  mov $0x3F8, %dx; in %dx, %al
    incw %cs:count
    mov $0x3FD, %dx; in %dx, %al                       # LSR: more data ready?
    test $1, %al
    jnz 3b
    mov $0x20, %al; out %al, $0x20
    pop %dx; pop %ax
    iret
"""

RTC_GUEST = PROLOGUE + """
    movw $irq8, 0x28*4
    movw $0, 0x28*4+2
""" + PIC_INIT + """
    mov $0xFB, %al; out %al, $0x21                     # the cascade (IR2) only
    mov $0xFE, %al; out %al, $0xA1                     # IRQ 8
    mov $0x0A, %al; out %al, $0x70; mov $0x23, %al; out %al, $0x71   # rate 3: 122 us
    mov $0x0B, %al; out %al, $0x70; mov $0x42, %al; out %al, $0x71   # PIE, 24 h
""" + WAIT_AND_EXIT + """
irq8:
    push %ax
    mov $0x0C, %al; out %al, $0x70; in $0x71, %al      # read C: acknowledges the RTC
    incw %cs:count
    mov $0x20, %al; out %al, $0xA0; out %al, $0x20     # EOI slave, master
    pop %ax
    iret
"""


def assemble(source: str) -> bytes:
    return assemble_flat(source, LOAD)


def run_guest(tmp_path, source: str, backend: str = "emu", host_input: bytes = b"",
              timeout: float = 60, **options):
    console = BufferConsole()
    with vm.Machine(memory_size=16 << 20, backend=backend, **options) as machine:
        board = attach_pc_devices(machine, console, rtc_start=0)
        machine.memory.write(LOAD, assemble(source))
        if host_input:
            console.send(host_input)
        result = machine.run(boot_state.real_mode(0, LOAD), timeout=timeout)
        board.close()
        return result, board


def test_emu_builds_the_python_chipset_and_the_pit_interrupts_through_the_8259(tmp_path):
    result, board = run_guest(tmp_path, PIT_GUEST)
    assert isinstance(board.chipset, Chipset)
    assert (result.status, result.reason) == (11, "debug-exit: guest wrote 0x5")
    assert board.chipset.pic.snapshot()["isr"] == 0


def test_emu_x2apic_timer_through_the_lapic_msrs(tmp_path):
    result, board = run_guest(tmp_path, X2APIC_GUEST)
    assert (result.status, result.reason) == (11, "debug-exit: guest wrote 0x5")
    assert board.chipset.lapic.timer_fired >= 5 and board.chipset.lapic.isr == 0


def test_emu_uart_receive_interrupt_from_host_input(tmp_path):
    """Host bytes come in on another thread in real use; the IRQ is raised on the vCPU's."""
    result, board = run_guest(tmp_path, COM1_GUEST, host_input=b"hello")
    assert (result.status, result.reason) == (11, "debug-exit: guest wrote 0x5")


def test_emu_rtc_periodic_interrupt_through_the_slave_8259(tmp_path):
    result, board = run_guest(tmp_path, RTC_GUEST)
    assert (result.status, result.reason) == (11, "debug-exit: guest wrote 0x5")


@pytest.mark.parametrize("guest", ["PIT_GUEST", "RTC_GUEST", "COM1_GUEST"])
@pytest.mark.parametrize("backend", PLATFORMS)
def test_the_same_guest_on_every_backend_and_irqchip(tmp_path, backend, guest):
    """One guest, three platforms: emu + Python chipset, KVM + its in-kernel irqchip, KVM +
    the Python chipset injected with KVM_INTERRUPT (--irqchip user)."""
    name, options = backend
    result, board = run_guest(tmp_path, globals()[guest], name, host_input=b"hello",
                              timeout=30, **options)
    assert (result.status, result.reason) == (11, "debug-exit: guest wrote 0x5")
    assert (board.chipset is None) == (name == "kvm" and options == {})
