"""The same guest on emu and on KVM makes the same port-I/O and MMIO exits, in the same
order, with the same data (ports the in-kernel irqchip and PIT of KVM answer themselves are
left out: on emu they are exits to the test stand-in)."""

from __future__ import annotations

import pytest

import test_boot_e2e as e2e
from guests.fixtures import guest_dir  # noqa: F401  (fixture)
from x86vm.machine.exits import IoExit, MmioExit
from x86vm.machine.vm import Machine

IN_KERNEL_PORTS = {0x20, 0x21, 0xA0, 0xA1, 0x40, 0x41, 0x42, 0x43, 0x61}


def _recording(monkeypatch, log: list):
    real = Machine.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        run = self.backend.run

        def recorded_run():
            ex = run()
            if isinstance(ex, IoExit) and ex.port not in IN_KERNEL_PORTS:
                log.append(("io", ex.port, ex.size, ex.is_write, ex.count,
                            bytes(ex.data) if ex.is_write else None))
            elif isinstance(ex, MmioExit):
                log.append(("mmio", ex.gpa, ex.size, ex.is_write,
                            bytes(ex.data) if ex.is_write else None))
            return ex

        self.backend.run = recorded_run

    monkeypatch.setattr(Machine, "__init__", init)


@pytest.mark.kvm
@pytest.mark.parametrize("name", ["realmode_hello", "multiboot", "tutorial", "long64_pvh"])
def test_exit_sequence_equals_kvm(monkeypatch, guest_dir, name):  # noqa: F811
    try:
        Machine(memory_size=2 << 20, backend="kvm").close()
    except Exception as exc:
        pytest.skip(f"KVM is not usable here: {exc}")
    logs = {}
    for backend in ("kvm", "emu"):
        log: list = []
        with monkeypatch.context() as mp:
            _recording(mp, log)
            result, serial, _, _ = e2e.run_x86vm(name, guest_dir, backend)
        logs[backend] = (result.status, log)
    assert logs["emu"][0] == logs["kvm"][0]
    kvm_log, emu_log = logs["kvm"][1], logs["emu"][1]
    if kvm_log != emu_log:
        common = min(len(kvm_log), len(emu_log))
        first = next((i for i in range(common) if kvm_log[i] != emu_log[i]), common)
        pytest.fail(f"exit {first} differs: kvm {kvm_log[first:first + 1]} "
                    f"emu {emu_log[first:first + 1]} ({len(kvm_log)} vs {len(emu_log)} exits)")
