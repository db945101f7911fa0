"""A test stand-in for the 8259A pair and 8254 channel 0, for the emu backend's end-to-end
runs until the machine has its own controller models (x86vm.devices).

Only what the long-mode test guest does: ICW1-ICW4, the mask register (OCW1), the
non-specific EOI (OCW2); PIT channel 0 in mode 2 with an LSB/MSB reload value, ticking
through the backend's guest-time service ``at(deadline_ns, callback)`` (8259A datasheet;
8254 datasheet, "Mode 2: rate generator").
"""

from __future__ import annotations

PIT_HZ = 1_193_182


class StandInPic:
    """Master 8259A (IRQ 0-7) with a slave answering nothing; edge triggered."""

    def __init__(self) -> None:
        self.base = 0x08
        self.imr = 0xFF
        self.irr = 0
        self.isr = 0
        self._icw: list[str] = []   # initialization words still expected after ICW1

    # the InterruptController seam
    def pending_vector(self) -> int | None:
        ready = self.irr & ~self.imr
        if not ready:
            return None
        irq = (ready & -ready).bit_length() - 1
        if self.isr and (self.isr & -self.isr).bit_length() - 1 <= irq:
            return None
        return self.base + irq

    def acknowledge(self) -> int | None:
        vector = self.pending_vector()
        if vector is None:
            return None
        bit = 1 << (vector - self.base)
        self.irr &= ~bit
        self.isr |= bit
        return vector

    def raise_irq(self, irq: int) -> None:
        self.irr |= 1 << irq

    # ports 0x20/0x21 (master) and 0xa0/0xa1 (slave, ignored)
    def read(self, offset: int, size: int) -> int:
        return self.imr if offset == 1 else self.irr

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            if value & 0x10:          # ICW1: ICW2, ICW3 (cascade) and ICW4 (if IC4) follow
                self._icw = ["base", "cascade"] + (["mode"] if value & 1 else [])
                self.imr = self.isr = self.irr = 0
            elif value & 0x20:        # OCW2: non-specific EOI
                if self.isr:
                    self.isr &= self.isr - 1
        elif self._icw:
            if self._icw.pop(0) == "base":
                self.base = value & 0xF8
        else:                         # OCW1: the interrupt mask
            self.imr = value


class IgnoredPorts:
    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        pass


class StandInPit:
    """8254 channel 0 in mode 2, IRQ 0 on the stand-in PIC."""

    def __init__(self, pic: StandInPic, timers) -> None:
        self.pic, self.timers = pic, timers
        self.reload = 0
        self._lsb: int | None = None
        self._timer = None

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 3:
            self._lsb = None
            return
        if offset != 0:
            return
        if self._lsb is None:
            self._lsb = value
            return
        self.reload = self._lsb | (value << 8) or 0x10000
        self._lsb = None
        if self._timer is not None:
            self._timer.cancel()
        self._arm()

    def _period_ns(self) -> int:
        return self.reload * 1_000_000_000 // PIT_HZ

    def _arm(self) -> None:
        self._timer = self.timers.at(self.timers.clock_ns() + self._period_ns(), self._tick)

    def _tick(self) -> None:
        self.pic.raise_irq(0)
        self._arm()


def needed(machine) -> bool:
    """True while the machine has no interrupt controller for the CPU and nothing on the
    8259A/8254 ports."""
    backend = machine.backend
    has_controller = getattr(getattr(backend, "cpu", None), "controller", None) is not None
    return not has_controller and all(machine.pio.find(p) is None for p in (0x20, 0x40))


def attach(machine) -> None:
    """Wire the stand-ins onto an emu-backed Machine (ports 0x20, 0xa0, 0x40)."""
    backend = machine.backend
    pic = StandInPic()
    machine.pio.register(0x20, 2, pic, "standin-pic")
    machine.pio.register(0xA0, 2, IgnoredPorts(), "standin-pic-slave")
    machine.pio.register(0x40, 4, StandInPit(pic, backend), "standin-pit")
    backend.set_interrupt_controller(pic)
