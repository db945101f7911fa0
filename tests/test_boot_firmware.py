"""Firmware tables (machine/boot/firmware.py) and the ACPI PM1 block (devices/acpi_pm.py).

Oracles: ACPICA's disassembler (``iasl -d``, Debian acpica-tools) reads every ACPI table back
— it reports a bad checksum or a malformed table — and the fields it decodes are compared
with the platform; Linux 6.1 (the guest of scripts/build-linux-guest, no ACPI in its config)
parses the MP table on KVM and reports the IOAPIC it found (slow).
"""

from __future__ import annotations

import struct
import subprocess

import pytest

from support import oracles
from support.dev_probe import FakeMachine
from x86vm.devices.acpi_pm import AcpiPm
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine import vm
from x86vm.machine.boot import load_image
from x86vm.machine.boot.firmware import PlatformTables, build_tables, checksum

TABLES = build_tables(PlatformTables())


def table(name: str) -> bytes:
    offset = TABLES.tables[name] - 0xF0000
    length = struct.unpack_from("<I", TABLES.image, offset + 4)[0]
    return TABLES.image[offset:offset + length]


def iasl(tmp_path, name: str) -> str:
    path = tmp_path / f"{name.lower()}.dat"
    path.write_bytes(table(name))
    run = subprocess.run(["iasl", "-d", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    text = path.with_suffix(".dsl").read_text()
    assert "Incorrect checksum" not in text and "Invalid" not in text, text
    return text


def field(text: str, label: str) -> list[str]:
    """The values iasl printed for ``label`` ("[off len] label : value")."""
    return [line.split(" : ", 1)[1].split()[0] for line in text.splitlines()
            if "]" in line and line.split("]", 1)[1].split(" : ")[0].strip() == label]


@pytest.mark.oracle("iasl")
def test_madt_as_acpica_reads_it(tmp_path):
    text = iasl(tmp_path, "APIC")
    assert field(text, "Local Apic Address") == ["FEE00000"]
    assert field(text, "Local Apic ID") == ["00"]
    assert field(text, "Address") == ["FEC00000"]  # the IOAPIC
    assert field(text, "Source") == ["00", "09"]   # IRQ 0 and the SCI overridden
    assert field(text, "Interrupt") == ["00000000", "00000002", "00000009"]  # GSI base, GSIs
    assert field(text, "Interrupt Input LINT") == ["01"]


@pytest.mark.oracle("iasl")
def test_fadt_points_at_the_pm1_block_and_dsdt_has_s5(tmp_path):
    text = iasl(tmp_path, "FACP")
    assert field(text, "PM1A Event Block Address") == ["00000600"]
    assert field(text, "PM1A Control Block Address") == ["00000604"]
    assert field(text, "PM Timer Block Address") == ["00000608"]
    assert field(text, "SCI Interrupt") == ["0009"]
    assert field(text, "SMI Command Port") == ["00000000"]
    assert field(text, "DSDT Address") == [f"{TABLES.tables['DSDT']:08X}"]
    assert field(text, "FACS Address") == [f"{TABLES.tables['FACS']:08X}"]
    dsdt = iasl(tmp_path, "DSDT")
    assert "Name (_S5, Package (0x04)" in dsdt and dsdt.count("Zero") >= 4
    rsdt = iasl(tmp_path, "RSDT")
    assert [v for v in field(rsdt, "ACPI Table Address   0")
            + field(rsdt, "ACPI Table Address   1")] == \
        [f"{TABLES.tables['FACP']:08X}", f"{TABLES.tables['APIC']:08X}"]


def test_rsdp_and_mp_structures():
    """ACPI 6.4 §5.2.5.3 and MP spec 1.4 §4.1/4.2: signatures, pointers, checksums."""
    image = TABLES.image
    rsdp = image[0:20]
    assert rsdp[:8] == b"RSD PTR " and checksum(rsdp) == 0
    assert struct.unpack_from("<I", rsdp, 16)[0] == TABLES.tables["RSDT"]
    mpfp = image[0x20:0x30]
    assert mpfp[:4] == b"_MP_" and checksum(mpfp) == 0 and mpfp[8:10] == b"\x01\x04"
    config = TABLES.tables["PCMP"]
    assert struct.unpack_from("<I", mpfp, 4)[0] == config
    off = config - 0xF0000
    length, count = struct.unpack_from("<H", image, off + 4)[0], \
        struct.unpack_from("<H", image, off + 34)[0]
    assert image[off:off + 4] == b"PCMP" and checksum(image[off:off + length]) == 0
    pos, kinds, intin = off + 44, [], {}
    for _ in range(count):
        kind = image[pos]
        kinds.append(kind)
        if kind == 3:
            intin[image[pos + 5]] = image[pos + 7]
        pos += 20 if kind == 0 else 8
    assert pos == off + length
    assert kinds.count(0) == 1 and kinds.count(2) == 1 and kinds.count(4) == 2
    assert intin == {0: 2, **{irq: irq for irq in range(1, 16) if irq != 2}}
    for name in ("DSDT", "FACP", "APIC", "RSDT"):
        assert checksum(table(name)) == 0


def test_loaders_write_the_tables_only_when_asked(tmp_path):
    with vm.Machine(memory_size=16 << 20, backend="emu") as m:
        board = attach_pc_devices(m, BufferConsole())
        boot = board.boot_options()
        image = _multiboot_stub()
        load_image(m.memory, image, "multiboot", **boot)
        assert m.memory.read(0xF0000, len(TABLES.image)) == TABLES.image
        board.close()
    with vm.Machine(memory_size=16 << 20, backend="emu") as m:
        load_image(m.memory, _multiboot_stub(), "multiboot")
        assert m.memory.read(0xF0000, 8) == bytes(8)


def _multiboot_stub() -> bytes:
    """A Multiboot kernel (a.out kludge header) that only halts, loaded at 1 MiB."""
    magic, flags = 0x1BADB002, 1 << 16
    header = struct.pack("<IIIIIIII", magic, flags, -(magic + flags) & 0xFFFFFFFF,
                         0x100000, 0x100000, 0x100040, 0x100040, 0x100020)
    return (header + b"\xf4\xeb\xfd").ljust(0x40, b"\0")


def test_acpi_pm_power_off_and_timer():
    stops, now = [], [0]
    pm = AcpiPm(lambda: now[0], lambda status, reason: stops.append((status, reason)))
    assert pm.read(4, 2) == 1                      # SCI_EN: in ACPI mode
    now[0] = 1_000_000_000
    assert pm.read(8, 4) == 3_579_545               # PM timer, 24-bit, at 3.579545 MHz
    now[0] = 5_000_000_000
    assert pm.read(8, 4) == 5 * 3_579_545 & 0xFFFFFF
    pm.write(4, 2, 1 << 10 | 1 << 13)               # SLP_TYP 1 (not S5): nothing
    assert stops == [] and pm.read(4, 2) == 1 | 1 << 10
    pm.write(4, 2, 0 << 10 | 1 << 13)               # S5: power off, the QEMU PIIX4 way
    assert stops == [(0, "ACPI power-off (S5)")]


def test_the_board_registers_the_pm_block():
    m = FakeMachine()
    board = attach_pc_devices(m)
    m.pio.write(0x604, 2, 1 << 13)
    assert m.stops == [(0, "ACPI power-off (S5)")] and board.acpi_pm is not None


@pytest.mark.slow
@pytest.mark.kvm
@pytest.mark.oracle("linux-guest")
def test_linux_finds_the_ioapic_through_the_mp_table():
    """Linux 6.1 (no ACPI) on KVM: 'found SMP MP-table', the IOAPIC and symmetric I/O mode
    (it then stops at XSAVE on this host's software KVM; the table is parsed long before)."""
    kernel = oracles.LINUX_CACHE / "bzImage"
    console = BufferConsole()
    with vm.Machine(memory_size=128 << 20, backend="kvm") as m:
        board = attach_pc_devices(m, console)
        entry = load_image(m.memory, kernel.read_bytes(), "linux",
                           cmdline="console=ttyS0 earlyprintk=serial", **board.boot_options())
        m.run(entry, timeout=60)
        board.close()
    log = bytes(console.output).decode("latin-1")
    assert "found SMP MP-table at [mem 0x000f0020-0x000f002f]" in log
    assert "IOAPIC[0]: apic_id 0, version 17, address 0xfec00000, GSI 0-23" in log
    assert "APIC: Switch to symmetric I/O mode setup" in log
