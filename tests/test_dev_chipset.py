"""The PC chipset as wired by ``build_chipset``: ISA IRQ routing to the 8259 pair and the
IOAPIC (IRQ 0 on pin 2), the LAPIC in front of both, and a guest that programs every register
with garbage while the timers storm — no exception, a consistent state, bounded callbacks."""

from __future__ import annotations

import random

import pytest

from dev_platform import LINUX_INIT, FakeTimers
from dev_probe import QEMU, TOOLS, run_on_bus
from x86vm.devices.chipset import build_chipset, ioapic_pin
from x86vm.devices.i8254 import MIN_EVENT_NS
from x86vm.devices.ioapic import IOAPIC_BASE
from x86vm.devices.lapic import APIC_BASE_DEFAULT, MIN_PERIOD_NS, ApicFault, Reg
from x86vm.machine.bus import MmioBus, PortBus

APIC = APIC_BASE_DEFAULT


@pytest.fixture
def rig():
    timers = FakeTimers()
    pio, mmio = PortBus(), MmioBus()
    kicks = []
    cs = build_chipset(timers, pio=pio, mmio=mmio, testdev=True,
                       on_pending=lambda: kicks.append(timers.now))
    cs.kicks = kicks
    return timers, pio, mmio, cs


def ioapic_route(mmio, pin, low, dest=0):
    for index, value in ((0x11 + 2 * pin, dest << 24), (0x10 + 2 * pin, low)):
        mmio.write(IOAPIC_BASE, 1, index)
        mmio.write(IOAPIC_BASE + 0x10, 4, value)


def apic_mode(pio, mmio):
    """What Linux does with an IOAPIC: 8259s masked, LAPIC software-enabled."""
    run_on_bus(LINUX_INIT + [("out", 0x21, 1, 0xFF), ("out", 0xA1, 1, 0xFF)], pio)
    mmio.write(APIC + Reg.SVR, 4, 0x1FF)


def test_routing_table():
    """QEMU's MADT: IRQ 0 -> GSI 2 (interrupt source override); IRQ 2 is the cascade."""
    assert [ioapic_pin(i) for i in range(24)] == [2, 1, None] + list(range(3, 24))


def test_pic_through_lint0_extint(rig):
    timers, pio, mmio, cs = rig
    run_on_bus(LINUX_INIT + [("out", 0x21, 1, 0x00)], pio)
    cs.irq_line(4).set_level(True)
    assert cs.kicks and cs.cpu_interrupts.pending_vector() == 0x24
    assert cs.cpu_interrupts.acknowledge() == 0x24 and cs.pic.master.isr == 0x10
    cs.irq_line(12).set_level(True)  # slave, through the cascade
    assert cs.cpu_interrupts.acknowledge() == 0x2C


def test_ioapic_edge_to_lapic(rig):
    timers, pio, mmio, cs = rig
    apic_mode(pio, mmio)
    ioapic_route(mmio, 4, 0x34)
    cs.irq_line(4).set_level(True)
    assert cs.pic.master.irr & 0x10  # the masked 8259 sees it too
    assert cs.cpu_interrupts.acknowledge() == 0x34
    mmio.write(APIC + Reg.EOI, 4, 0)
    assert cs.lapic.isr == 0 and cs.cpu_interrupts.pending_vector() is None


def test_ioapic_level_eoi_broadcast(rig):
    timers, pio, mmio, cs = rig
    apic_mode(pio, mmio)
    ioapic_route(mmio, 10, 0x3A | 1 << 15)
    cs.irq_line(10).set_level(True)
    assert cs.cpu_interrupts.acknowledge() == 0x3A
    mmio.write(APIC + Reg.EOI, 4, 0)  # TMR set: EOI goes to the IOAPIC, pin still high
    assert cs.cpu_interrupts.acknowledge() == 0x3A
    cs.irq_line(10).set_level(False)
    mmio.write(APIC + Reg.EOI, 4, 0)
    assert cs.cpu_interrupts.pending_vector() is None
    assert not cs.ioapic.redirection[10] & 1 << 14


def test_pit_reaches_ioapic_pin_2_not_0(rig):
    timers, pio, mmio, cs = rig
    apic_mode(pio, mmio)
    ioapic_route(mmio, 0, 0x40)
    ioapic_route(mmio, 2, 0x30)
    run_on_bus([("out", 0x43, 1, 0x34), ("out", 0x40, 1, 0xA9), ("out", 0x40, 1, 0x04)], pio)
    assert cs.ioapic.sent == 0  # OUT was high before: programming mode 2 is no edge
    timers.advance(999_847)  # 1193 counts = 999,847.5 ns: the first rising edge, not yet
    assert cs.ioapic.sent == 0
    timers.advance(1)
    assert cs.ioapic.sent == 1
    timers.advance(2_000_000)
    assert cs.cpu_interrupts.acknowledge() == 0x30
    assert cs.ioapic.sent == 3 and cs.cpu_interrupts.pending_vector() is None
    cs.irq_line(2).set_level(True)  # the cascade input is not an IOAPIC pin
    assert cs.ioapic.sent == 3


def test_testdev_irq_port_and_gsi_above_15(rig):
    timers, pio, mmio, cs = rig
    apic_mode(pio, mmio)
    ioapic_route(mmio, 20, 0x50)
    pio.write(0x2000 + 20, 1, 1)
    assert cs.cpu_interrupts.acknowledge() == 0x50


def test_on_pending_after_eoi_and_tpr(rig):
    """The board is told when a waiting vector becomes deliverable (KVM's interrupt window)."""
    timers, pio, mmio, cs = rig
    apic_mode(pio, mmio)
    mmio.write(APIC + Reg.ICR_LOW, 4, 0x40061)
    cs.cpu_interrupts.acknowledge()
    mmio.write(APIC + Reg.ICR_LOW, 4, 0x40062)  # same class: waits for the EOI
    mmio.write(APIC + Reg.TPR, 4, 0x70)
    cs.kicks.clear()
    mmio.write(APIC + Reg.EOI, 4, 0)
    assert cs.kicks == []  # TPR still blocks it
    mmio.write(APIC + Reg.TPR, 4, 0)
    assert len(cs.kicks) == 1 and cs.cpu_interrupts.pending_vector() == 0x62


def test_apic_base_relocation_and_disabled_page(rig):
    """kvm-unit-tests apic "apicbase": the page follows IA32_APIC_BASE (0xFED40000); the old
    page, and any page while the APIC is globally disabled, reads all ones; relocating onto
    another device leaves the APIC unreachable, and mappings stay bounded."""
    timers, pio, mmio, cs = rig
    cpu = cs.cpu_interrupts
    cpu.msr_write(0x1B, 0xFEE00000 | 0x100)  # disable (BSP bit is read-only)
    assert mmio.read(APIC + Reg.VERSION, 4) == 0xFFFFFFFF
    cpu.msr_write(0x1B, 0xFED40000 | 0x900)
    assert mmio.read(0xFED40000 + Reg.VERSION, 4) == 0x00050014
    assert mmio.read(APIC + Reg.VERSION, 4) == 0xFFFFFFFF
    cpu.msr_write(0x1B, IOAPIC_BASE | 0x900)  # onto the IOAPIC: it keeps its page
    mmio.write(IOAPIC_BASE, 1, 1)
    assert mmio.read(IOAPIC_BASE + 0x10, 4) == 0x00170011
    for page in range(40):
        cpu.msr_write(0x1B, (0x80000000 + (page << 12)) | 0x900)
    assert len(cs.apic_windows.bases) <= 16 and len(cs.apic_windows.refused) <= 16
    cpu.msr_write(0x1B, APIC | 0x900)
    assert mmio.read(APIC + Reg.VERSION, 4) == 0x00050014


def test_snapshot(rig):
    timers, pio, mmio, cs = rig
    run_on_bus([("out", 0x43, 1, 0xB6), ("out", 0x42, 1, 0x34), ("out", 0x42, 1, 0x12)], pio)
    snap = cs.snapshot()
    assert snap["pit"]["counters"][2]["reload"] == 0x1234 and snap["lapic"]["svr"] == 0x1FF
    assert snap["pic"]["imr"] == 0x8EB8 and len(snap["ioapic"]["redirection"]) == 24


def test_seabios_handoff_state(rig):
    """What QEMU 7.2 + SeaBIOS showed at a multiboot kernel's entry: the same reads here, and
    the 18.2 Hz timer reaching the CPU as vector 0x08 through LINT0 once IF is set."""
    timers, pio, mmio, cs = rig
    reads = run_on_bus([("in", 0x21, 1, None), ("in", 0xA1, 1, None), ("in", 0x4D0, 1, None),
                        ("in", 0x4D1, 1, None), ("out", 0x43, 1, 0xE2),
                        ("in", 0x40, 1, 0x3F)], pio)
    assert reads == bytes([0xB8, 0x8E, 0x00, 0x0C, 0x34])
    assert (cs.pic.master.vector_base, cs.pic.slave.vector_base) == (0x08, 0x70)
    assert mmio.read(APIC + Reg.LVT_LINT0, 4) == 0x8700
    timers.advance(55_000_000)
    assert cs.cpu_interrupts.acknowledge() == 0x08


def test_debugcon_without_testdev():
    out = bytearray()
    pio = PortBus()
    cs = build_chipset(FakeTimers(), pio=pio, debugcon_write=out.extend, firmware=False)
    pio.write(0xE9, 1, ord("x"))
    assert bytes(out) == b"x" and pio.read(0xE9, 1) == 0xE9 and cs.testdev is None


def test_timer_storm_is_bounded(rig):
    """APIC timer periodic at count 1 / divide 1 and PIT mode 2 at count 1, both unmasked:
    callbacks stay within one per floor interval per timer, and interrupts keep coming."""
    timers, pio, mmio, cs = rig
    apic_mode(pio, mmio)
    ioapic_route(mmio, 2, 0x30)
    run_on_bus([("out", 0x43, 1, 0x34), ("out", 0x40, 1, 1), ("out", 0x40, 1, 0)], pio)
    for reg, value in ((Reg.TIMER_DIVIDE, 0xB), (Reg.LVT_TIMER, 0x20040),
                       (Reg.TIMER_INITIAL, 1)):
        mmio.write(APIC + reg, 4, value)
    ns = 20_000_000
    ran = timers.advance(ns)
    assert ran <= ns // MIN_EVENT_NS + ns // MIN_PERIOD_NS + 4
    taken = set()
    for _ in range(4):
        vector = cs.cpu_interrupts.acknowledge()
        taken.add(vector)
        mmio.write(APIC + Reg.EOI, 4, 0)
    assert taken == {0x40, 0x30, None}


# -- garbage ------------------------------------------------------------------------------

PORTS = [0x20, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1, 0x40, 0x41, 0x42, 0x43, 0x61, 0xE0, 0xE4,
         0xE8, 0x2000]
MSRS = [0x1B, 0x6E0] + list(range(0x800, 0x840))


def check_consistent(cs, timers):
    for chip in (cs.pic.master, cs.pic.slave):
        assert all(0 <= v <= 0xFF for v in (chip.irr, chip.isr, chip.imr, chip.elcr,
                                             chip.vector_base, chip.lowest_priority))
    lapic = cs.lapic
    assert 0 <= lapic.irr < 1 << 256 and 0 <= lapic.isr < 1 << 256 and 0 <= lapic.tmr < 1 << 256
    assert lapic.irr & 0xFFFF == 0  # vectors 0-15 are never accepted
    assert 0 <= lapic.tpr <= 0xFF and 0 <= lapic.ppr <= 0xFF and 0 <= lapic.svr <= 0x3FF
    assert 0 <= lapic.timer_current <= max(lapic.timer_initial, 0)
    assert all(0 <= e < 1 << 64 for e in cs.ioapic.redirection)
    vector = lapic.pending_vector()
    assert vector is None or 0 <= vector <= 0xFF
    assert len([e for e in timers.pending if not e[3]]) <= 3  # PIT, APIC timer, one stale


def garbage_value(rng, bits=32):
    """Random, but often small or with the mask bit clear, so timers and vectors get going."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.getrandbits(bits)
    if kind == 1:
        return rng.getrandbits(8)
    if kind == 2:
        return rng.randrange(1, 64)
    return rng.getrandbits(min(bits, 20)) & ~(1 << 16)


def garbage_step(rng, cs, timers, pio, mmio):
    action = rng.randrange(10)
    size = rng.choice((1, 1, 1, 2, 4))
    if action == 0:
        port = rng.choice(PORTS) + rng.randrange(4)
        pio.write(port, size, garbage_value(rng, 8 * size))
    elif action == 1:
        value = pio.read(rng.choice(PORTS) + rng.randrange(4), size)
        assert 0 <= value < 1 << (8 * size)
    elif action == 2:
        offset = rng.randrange(0x400) & ~0xF if rng.random() < 0.9 else rng.randrange(0x1000)
        value = garbage_value(rng)
        if offset == Reg.SVR and rng.random() < 0.8:
            value |= 0x100  # mostly software-enabled, or nothing is ever delivered
        mmio.write(APIC + offset, rng.choice((4, 4, 4, 1, 8)), value)
    elif action == 3:
        assert 0 <= mmio.read(APIC + rng.randrange(0x1000), 4) < 1 << 32
    elif action == 4:
        offset = rng.choice((0x00, 0x10, rng.randrange(0x100)))
        mmio.write(IOAPIC_BASE + offset, rng.choice((1, 4)), garbage_value(rng))
        assert 0 <= mmio.read(IOAPIC_BASE + 0x10, 4) < 1 << 32
    elif action == 5:
        msr = rng.choice(MSRS[1:] if rng.random() < 0.95 else MSRS[:1])
        value = garbage_value(rng, rng.choice((8, 32, 64)))
        if msr == 0x1B and rng.random() < 0.7:
            value = 0xFEE00000 | rng.choice((0x800, 0xC00, 0x000, 0x900))
        elif msr == 0x80F and rng.random() < 0.8:
            value |= 0x100
        try:
            if rng.random() < 0.5:
                cs.lapic.msr_write(msr, value)
            else:
                assert 0 <= cs.lapic.msr_read(msr) < 1 << 64
        except ApicFault:
            pass  # the CPU's #GP(0): a guest-visible outcome
    elif action == 6:
        cs.irq_line(rng.randrange(24)).set_level(rng.random() < 0.5)
    elif action == 7:
        cs.cpu_interrupts.acknowledge()
        if rng.random() < 0.7:
            cs.lapic.eoi()
    elif action == 8:
        ns = rng.choice((1, 100, 10_000, 1_000_000))
        ran = timers.advance(ns)
        assert ran <= 2 * (ns // min(MIN_EVENT_NS, MIN_PERIOD_NS) + 2)
    else:
        cs.lapic.take_nmi()


@pytest.mark.parametrize("seed", range(8))
def test_garbage_everywhere_stays_consistent(seed):
    rng = random.Random(seed)
    timers = FakeTimers()
    pio, mmio = PortBus(), MmioBus()
    cs = build_chipset(timers, pio=pio, mmio=mmio, testdev=True)
    for step in range(10_000):
        garbage_step(rng, cs, timers, pio, mmio)
        if step % 50 == 0:
            check_consistent(cs, timers)
    check_consistent(cs, timers)


def test_lines_driven_from_another_thread(rig):
    """A host thread (the UART's input) toggles IRQ lines while the vCPU takes interrupts:
    the chipset's lock keeps every model consistent."""
    import threading
    timers, pio, mmio, cs = rig
    apic_mode(pio, mmio)
    ioapic_route(mmio, 4, 0x34)
    ioapic_route(mmio, 10, 0x3A | 1 << 15)
    stop = threading.Event()

    def host():
        while not stop.is_set():
            for line in (4, 10):
                cs.irq_line(line).set_level(True)
                cs.irq_line(line).set_level(False)

    thread = threading.Thread(target=host)
    thread.start()
    taken = 0
    try:
        for _ in range(3000):
            if cs.cpu_interrupts.acknowledge() is not None:
                taken += 1
                mmio.write(APIC + Reg.EOI, 4, 0)
    finally:
        stop.set()
        thread.join()
    check_consistent(cs, timers)
    assert taken > 0 and cs.lapic.isr == 0


# -- the firmware state against QEMU 7.2 + SeaBIOS ------------------------------------------

MULTIBOOT_PROBE = """
.code32
.globl _start
.align 4
header:
  .long 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  .long header, header, 0, 0, _start
_start:
  cli
  mov $0xE2, %al
  out %al, $0x43
  in $0x40, %al
  out %al, $0xE9
{reads}
  mov $0, %al
  out %al, $0xF4
1: hlt
  jmp 1b
"""
HANDOFF_PORTS = (0x21, 0xA1, 0x4D0, 0x4D1, 0x61)
HANDOFF_MASKS = (0x3F, 0xFF, 0xFF, 0xFF, 0xFF, 0x03)  # PIT status w/o OUT, NULL COUNT; 0x61


@pytest.mark.skipif(not (QEMU and TOOLS), reason="needs qemu-system-x86_64 and GNU as/ld")
def test_firmware_state_matches_qemu_seabios(tmp_path):
    """A multiboot kernel started by ``qemu -kernel`` (SeaBIOS ran first) reads the PIT's
    counter-0 status, the IMRs, the ELCRs and port 0x61; build_chipset's firmware state must
    read the same."""
    import subprocess
    reads = "\n".join(f"  mov ${port:#x}, %dx\n  in %dx, %al\n  out %al, $0xE9"
                      for port in HANDOFF_PORTS)
    src, obj, elf = tmp_path / "mb.S", tmp_path / "mb.o", tmp_path / "mb.elf"
    src.write_text(MULTIBOOT_PROBE.replace("{reads}", reads))
    subprocess.run(["as", "--32", "-o", obj, src], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext", "0x100000", "-e", "_start", "-o", elf,
                    obj], check=True)
    dbg = tmp_path / "debugcon.out"
    subprocess.run([QEMU, "-machine", "pc,accel=tcg", "-m", "128M", "-display", "none",
                    "-nodefaults", "-no-reboot", "-kernel", elf,
                    "-chardev", f"file,id=dbg,path={dbg}",
                    "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=1"],
                   capture_output=True, timeout=120)
    qemu = bytes(b & m for b, m in zip(dbg.read_bytes(), HANDOFF_MASKS, strict=True))
    pio = PortBus()
    build_chipset(FakeTimers(), pio=pio)
    ours = run_on_bus([("out", 0x43, 1, 0xE2), ("in", 0x40, 1, 0x3F)]
                      + [("in", port, 1, None) for port in HANDOFF_PORTS], pio)
    ours = bytes(b & m for b, m in zip(ours, HANDOFF_MASKS, strict=True))
    assert ours.hex(" ") == qemu.hex(" ")
