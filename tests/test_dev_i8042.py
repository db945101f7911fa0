"""i8042 controller: reset line, interrupts, status bits (IBM PC AT Technical Reference,
"Keyboard Controller"). Command replies are compared against QEMU in test_dev_qemu.py."""

from __future__ import annotations

import pytest

from x86vm.devices.i8042 import I8042, register_i8042
from x86vm.machine.bus import PortBus
from x86vm.machine.irq import NullIrqLine


class Resets(list):
    def __call__(self, reason: str) -> None:
        self.append(reason)


@pytest.fixture
def env():
    resets, kbd, aux = Resets(), NullIrqLine(), NullIrqLine()
    bus = PortBus()
    kbc = I8042(resets, kbd, aux)
    register_i8042(bus, kbc)
    return bus, kbc, resets, kbd, aux


@pytest.mark.parametrize("cmd", [0xFE, 0xF0, 0xFA, 0xF2])
def test_pulse_commands_with_bit0_clear_reset(env, cmd):
    bus, _, resets, _, _ = env
    bus.write(0x64, 1, cmd)
    assert len(resets) == 1 and f"{cmd:#04x}" in resets[0]


def test_pulse_without_reset_bit_and_unknown_commands_do_nothing(env):
    bus, kbc, resets, _, _ = env
    for cmd in (0xFF, 0xF1, 0xFD, 0x00, 0x13, 0xC8):
        bus.write(0x64, 1, cmd)
    assert not resets and bus.read(0x64, 1) & 0x01 == 0


def test_output_port_write_with_reset_line_low(env):
    bus, _, resets, _, _ = env
    bus.write(0x64, 1, 0xD1)
    bus.write(0x60, 1, 0xDF)  # A20 on, reset high: fine
    assert not resets
    bus.write(0x64, 1, 0xD0)
    assert bus.read(0x60, 1) == 0xDF
    bus.write(0x64, 1, 0xD1)
    bus.write(0x60, 1, 0xDE)
    assert len(resets) == 1


def test_linux_reboot_k_loop_terminates(env):
    """Linux's kb_wait() polls status bit 1 (IBF) before writing 0xFE: IBF must clear."""
    bus, _, resets, _, _ = env
    for _ in range(10):
        for _ in range(0x10000):
            if not bus.read(0x64, 1) & 0x02:
                break
        else:
            pytest.fail("input buffer never empties")
        bus.write(0x64, 1, 0xFE)
    assert len(resets) == 10


def test_keyboard_irq_follows_output_buffer(env):
    bus, _, _, kbd, aux = env
    bus.write(0x60, 1, 0xF2)  # identify: ACK, 0xAB, 0x83
    assert kbd.level and not aux.level
    replies = [bus.read(0x60, 1) for _ in range(3)]
    assert replies == [0xFA, 0xAB, 0x83] and not kbd.level
    assert kbd.edges == 3  # one edge per byte for the edge-triggered PIC
    bus.write(0x64, 1, 0x60)
    bus.write(0x60, 1, 0x00)  # interrupts off in the command byte
    bus.write(0x60, 1, 0xEE)
    assert not kbd.level and bus.read(0x64, 1) & 0x01
    assert bus.read(0x60, 1) == 0xEE


def test_aux_irq_and_aux_output_flag(env):
    bus, _, _, kbd, aux = env
    bus.write(0x64, 1, 0xD3)
    bus.write(0x60, 1, 0x5A)
    assert aux.level and not kbd.level
    assert bus.read(0x64, 1) & 0x21 == 0x21
    assert bus.read(0x60, 1) == 0x5A and not aux.level


def test_status_a2_bit_tracks_last_write(env):
    bus, _, _, _, _ = env
    bus.write(0x64, 1, 0x20)
    assert bus.read(0x64, 1) & 0x08
    bus.read(0x60, 1)
    bus.write(0x60, 1, 0xF4)
    assert bus.read(0x64, 1) & 0x08 == 0


def test_self_test_sets_system_flag_and_empty_read_repeats(env):
    bus, _, _, _, _ = env
    assert bus.read(0x64, 1) & 0x04 == 0
    bus.write(0x64, 1, 0xAA)
    assert bus.read(0x64, 1) & 0x05 == 0x05
    assert bus.read(0x60, 1) == 0x55
    assert bus.read(0x60, 1) == 0x55  # nothing new: the last byte again


def test_wide_and_neighbouring_accesses(env):
    bus, _, resets, _, _ = env
    assert bus.find(0x61) is None and bus.find(0x63) is None  # port B etc. are not ours
    bus.write(0x64, 1, 0xAA)
    assert bus.read(0x60, 2) == 0xFF55  # byte at 0x61 floats
    bus.write(0x64, 2, 0xFFFE)  # outw: 0xFE at 0x64, 0xFF lands on 0x65 (not decoded)
    assert len(resets) == 1


@pytest.mark.parametrize("writes", [
    [(0x60, 0xF2)],                      # keyboard identify: 3 reply bytes each
    [(0x64, 0xD4), (0x60, 0xF2)],        # mouse identify: 2 reply bytes each
    [(0x64, 0x20)], [(0x64, 0xD2), (0x60, 0x41)],  # controller replies, loopback
])
def test_a_guest_that_never_reads_cannot_grow_the_queue(env, writes):
    """The hardware buffers are small; what a guest floods beyond them is dropped
    (the QEMU comparison, i8042_overflow in dev_scenarios.py, pins which bytes)."""
    bus, kbc, _, _, _ = env
    for _ in range(20_000):
        for port, value in writes:
            bus.write(port, 1, value)
    assert len(kbc.queue) <= 16
    assert kbc.dropped > 0
    while bus.read(0x64, 1) & 1:
        bus.read(0x60, 1)
    assert not kbc.queue and kbc._waiting == [0, 0, 0]
