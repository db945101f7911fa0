"""A misbehaving guest never crashes the monitor: random port traffic of every width at and
around every PC device port only ever yields values of the access width."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from support.dev_probe import FakeMachine
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices

PORTS = [p for base, n in ((0x3F8, 8), (0xF4, 1), (0x80, 1), (0x70, 2), (0x60, 5),
                           (0x510, 2)) for p in range(base - 1, base + n + 1)]

access = st.tuples(st.sampled_from(PORTS), st.sampled_from((1, 2, 4)), st.booleans(),
                   st.integers(0, 0xFFFFFFFF))


@settings(max_examples=300, deadline=None)
@given(st.lists(access, max_size=200), st.binary(max_size=40))
# the RTC's periodic interrupt on (rate 6 in register A, PIE in B): it asks for a guest timer
@example([(0x70, 1, True, 0x0A), (0x71, 1, True, 0x26), (0x70, 1, True, 0x0B),
          (0x71, 1, True, 0x42)], b"")
def test_random_port_traffic_is_harmless(accesses, host_input):
    machine = FakeMachine()
    console = BufferConsole()
    devices = attach_pc_devices(machine, console)
    console.send(host_input)
    for port, size, is_write, value in accesses:
        if is_write:
            machine.pio.write(port, size, value & ((1 << (8 * size)) - 1))
        else:
            assert 0 <= machine.pio.read(port, size) < 1 << (8 * size)
    assert all(status & 1 for status, _ in machine.stops)  # debug-exit statuses are odd
    assert devices.uart.backlog <= len(host_input)
