"""A guest that programs the interrupt controllers with garbage, then starts a timer storm
(the local APIC timer periodic with count 1, divide by 1: its shortest period), on every
backend and irqchip. Whatever the guest ends up doing to itself, the run ends in a
guest-visible way — debug-exit, halt, shutdown (triple fault) or the --timeout — never with a
device error (status 126), a monitor exception or a hang, and ``--timeout`` ends it on time,
also on the host clock (KVM with the Python chipset), where the storm's device timers come
due faster than their callbacks run (machine/timers.py ``run_due``).

The guest (real mode, then unreal mode for the two MMIO pages) draws values from a xorshift32
seeded per test: 8-bit writes to every PIC, ELCR, PIT, port 0x61 and CMOS register, 32-bit
writes to random LAPIC registers and to IOAPIC IOREGSEL/IOWIN; every IVT vector points at a
handler that EOIs both PICs and the LAPIC and returns, so a garbage vector base is harmless.
"""

from __future__ import annotations

import time

import pytest

from support.backends import PLATFORMS
from test_platform_wiring import assemble
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine import vm
from x86vm.machine.backend import STATUS_TIMEOUT
from x86vm.machine.boot import state as boot_state

pytestmark = pytest.mark.oracle("binutils")

LOAD = 0x7C00
TIMEOUT = 8.0

GUEST = r"""
.code16
.globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7000, %sp
    xor %di, %di                                # every vector -> any_irq
1:  movw $any_irq, (%di)
    movw $0, 2(%di)
    add $4, %di
    cmp $0x400, %di
    jne 1b
    lgdt gdt_ptr                                # unreal mode: FS = flat 4 GiB data
    mov %cr0, %eax
    or $1, %al
    mov %eax, %cr0
    mov $8, %bx
    mov %bx, %fs
    and $0xFE, %al
    mov %eax, %cr0
    xor %ax, %ax
    mov %ax, %fs
    mov seed, %esi
    mov $4000, %cx                              # garbage rounds
2:  call rand
    mov %eax, %ebx
    movzbw %bl, %bx
    and $15, %bx
    shl $1, %bx
    mov ports(%bx), %dx
    call rand
    out %al, %dx                                # a byte to a controller port
    call rand
    mov %eax, %ebx
    and $0x3F0, %ebx                            # a LAPIC register
    or $0xFEE00000, %ebx
    call rand
    addr32 mov %eax, %fs:(%ebx)
    call rand
    mov $0xFEC00000, %ebx                       # IOAPIC: select, then write the window
    addr32 mov %eax, %fs:(%ebx)
    call rand
    addr32 mov %eax, %fs:0x10(%ebx)
    loop 2b
    mov $0xFEE00000, %ebx                       # the storm: APIC timer at its shortest
    addr32 movl $0x1FF, %fs:0xF0(%ebx)          # SVR: enabled
    addr32 movl $0, %fs:0x80(%ebx)              # TPR 0: garbage may have raised it
    addr32 movl $0x0B, %fs:0x3E0(%ebx)          # divide by 1
    addr32 movl $0x20040, %fs:0x320(%ebx)       # periodic, vector 0x40
    addr32 movl $1, %fs:0x380(%ebx)             # count 1
    sti
    mov $200000, %ecx
3:  addr32 loop 3b
    cli
    mov count, %al
    out %al, $0xF4                              # survived: report how many it took
4:  hlt
    jmp 4b

rand:                                           # xorshift32 in %esi, result in %eax
    mov %esi, %eax
    shl $13, %eax
    xor %eax, %esi
    mov %esi, %eax
    shr $17, %eax
    xor %eax, %esi
    mov %esi, %eax
    shl $5, %eax
    xor %eax, %esi
    mov %esi, %eax
    ret

any_irq:
    push %eax
    push %ebx
    incb %cs:count
    mov $0x20, %al
    out %al, $0xA0
    out %al, $0x20
    mov $0xFEE000B0, %ebx
    addr32 movl $0, %fs:(%ebx)
    pop %ebx
    pop %eax
    iret

.align 8
gdt:    .quad 0
        .quad 0x00CF92000000FFFF                # flat data, 4 GiB
gdt_ptr: .word 15
        .long gdt
ports:  .word 0x20, 0x21, 0xA0, 0xA1, 0x40, 0x41, 0x42, 0x43
        .word 0x61, 0x70, 0x71, 0x4D0, 0x4D1, 0x21, 0xA1, 0x43
count:  .byte 0
seed:   .long SEED
"""


def run(tmp_path, name, options, source, timeout):
    image = assemble(source)
    with vm.Machine(memory_size=16 << 20, backend=name, **options) as machine:
        board = attach_pc_devices(machine, BufferConsole(), rtc_start=0)
        machine.memory.write(LOAD, image)
        start = time.monotonic()
        result = machine.run(boot_state.real_mode(0, LOAD), timeout=timeout)
        elapsed = time.monotonic() - start
        board.close()
        return result, elapsed, board


@pytest.mark.parametrize("backend", PLATFORMS)
def test_timeout_ends_a_storm_on_time(tmp_path, backend):
    """No garbage, only the storm, and a guest that never stops taking it."""
    name, options = backend
    source = GUEST.replace("SEED", "1").replace("mov $4000, %cx", "mov $1, %cx") \
        .replace("3:  addr32 loop 3b", "3:  jmp 3b")
    result, elapsed, board = run(tmp_path, name, options, source, 3.0)
    assert result.status == STATUS_TIMEOUT, result.reason
    assert elapsed < 3.0 + 2, elapsed
    if board.chipset is not None:
        assert board.chipset.lapic.timer_fired > 100


@pytest.mark.parametrize("seed", [0x1234567, 0xC0FFEE])
@pytest.mark.parametrize("backend", PLATFORMS)
def test_garbage_and_a_timer_storm_end_in_a_guest_visible_state(tmp_path, backend, seed):
    name, options = backend
    image = assemble(GUEST.replace("SEED", hex(seed)))
    with vm.Machine(memory_size=16 << 20, backend=name, **options) as machine:
        board = attach_pc_devices(machine, BufferConsole(), rtc_start=0)
        machine.memory.write(LOAD, image)
        start = time.monotonic()
        result = machine.run(boot_state.real_mode(0, LOAD), timeout=TIMEOUT)
        elapsed = time.monotonic() - start
        board.close()
        if board.chipset is not None:  # the Python models are still consistent
            lapic = board.chipset.lapic
            assert lapic.irr & 0xFFFF == 0  # vectors 0-15 are never accepted
            assert 0 <= lapic.timer_current <= lapic.timer_initial
            assert all(0 <= v <= 0xFFFF for v in board.chipset.pic.snapshot().values())
    print(f"{backend} {seed:#x}: status {result.status}, {result.reason}, {elapsed:.1f} s")
    assert "device error" not in result.reason, result.reason  # a model raised
    assert elapsed < TIMEOUT + 5, (elapsed, result.reason)
    # KVM's own verdicts count as guest-visible: garbage IOAPIC entries can send the vCPU an
    # INIT (KVM's in-kernel LAPIC resets it to f000:fff0), and this host's software KVM
    # cannot emulate every instruction a wild guest reaches
    guest_visible = ("debug-exit", "guest halted", "guest shut down", "reset",
                     "KVM internal error")
    assert result.status == STATUS_TIMEOUT or result.reason.startswith(guest_visible), \
        result.reason
