"""Firmware tables a kernel reads to find the interrupt controllers and the power-off port:
an Intel MultiProcessor table (MP spec 1.4) and ACPI (RSDP, RSDT, FADT with FACS and a
DSDT holding ``\\_S5``, MADT), written where a PC BIOS leaves them.

Both describe the platform QEMU's ``-M pc`` has (and KVM's in-kernel irqchip, and the board's
Python chipset): one LAPIC per CPU at 0xFEE00000, one IOAPIC at 0xFEC00000 with 24 pins, ISA
IRQ n on pin n except IRQ 0 on pin 2 (MADT interrupt source override, MP I/O interrupt
entry), the 8259 behind LINT0 (ExtINT) and NMI on LINT1. The ACPI PM1 block is QEMU PIIX4's
at port 0x600 (PM1a event 0x600, control 0x604, timer 0x608; SCI on IRQ 9): writing SLP_EN
with SLP_TYP 0 (``\\_S5`` = package {0, 0, 0, 0}, as QEMU's DSDT) powers off.

Where (ACPI 6.4 §5.2.5.1, MP spec §4): the RSDP and the MP floating pointer lie on 16-byte
boundaries in 0xF0000-0xFFFFF, the BIOS ROM window every x86vm memory map reports reserved,
so a kernel finds them by scanning; the Linux loader also passes the RSDP address in
``boot_params.acpi_rsdp_addr`` and the PVH loader in ``hvm_start_info.rsdp_paddr``.
Versions: RSDP revision 0 with an RSDT, FADT revision 1 (116 bytes), MADT revision 1, MP
spec revision 1.4 (the forms every kernel since the 1990s reads).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TABLES_BASE = 0xF0000
TABLES_SIZE = 0x1000
OEM_ID = b"X86VM "
OEM_TABLE_ID = b"X86VMPC "
CREATOR_ID = b"X86V"

PM_BASE = 0x600  # QEMU PIIX4 (hw/acpi/piix4.c, pm_io_base)
PM1_EVT_LEN, PM1_CNT_LEN, PM_TMR_LEN = 4, 2, 4
PM1_CNT_OFFSET, PM_TMR_OFFSET = 4, 8
SCI_IRQ = 9
S5_SLP_TYP = 0

# FADT flags (ACPI 6.4 Table 5.10): WBINVD, PROC_C1, PWR_BUTTON and SLP_BUTTON as control
# methods (no fixed buttons), TMR_VAL_EXT clear (24-bit PM timer)
FADT_WBINVD, FADT_PROC_C1, FADT_PWR_BUTTON, FADT_SLP_BUTTON = 1 << 0, 1 << 2, 1 << 4, 1 << 5
# MADT (ACPI 6.4 §5.2.12): flags PCAT_COMPAT; structure types
MADT_PCAT_COMPAT = 1
MADT_LAPIC, MADT_IOAPIC, MADT_ISO, MADT_LAPIC_NMI = 0, 1, 2, 4
MPS_INTI_LEVEL_HIGH = 0x000D  # trigger level (11b << 2) | polarity active high (01b)
# MP spec Table 4-3 entry types; 4-10 interrupt types
MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_IOINTR, MP_LOCALINTR = range(5)
MP_INT, MP_NMI, MP_EXTINT = 0, 1, 3


@dataclass(frozen=True)
class PlatformTables:
    """What the tables describe (the board fills it in from its devices)."""

    num_cpus: int = 1
    lapic_base: int = 0xFEE00000
    lapic_version: int = 0x14
    ioapic_id: int = 0
    ioapic_base: int = 0xFEC00000
    ioapic_version: int = 0x11
    irq0_gsi: int = 2
    pm_base: int | None = PM_BASE
    """The PM1 block's port (FADT), or None for no ACPI power management."""
    sci_irq: int = SCI_IRQ
    base: int = TABLES_BASE
    bios_ivt: bool = True
    """Multiboot: also leave a BIOS's real-mode IVT (machine/boot/bios.py)."""
    init_writes: tuple[tuple[str, int, int], ...] = ()
    """Multiboot: port/MMIO writes firmware makes to controllers the loader cannot program
    itself (KVM's in-kernel irqchip), run by a stub before the kernel (bios.py)."""


def checksum(data: bytes) -> int:
    """The byte that makes ``data`` sum to 0 (mod 256)."""
    return -sum(data) & 0xFF


def _with_checksum(data: bytearray, offset: int) -> bytes:
    data[offset] = 0
    data[offset] = checksum(data)
    return bytes(data)


def acpi_table(signature: bytes, revision: int, body: bytes) -> bytes:
    """A System Description Table: the 36-byte header (ACPI 6.4 §5.2.6) and ``body``."""
    header = struct.pack("<4sIBB6s8sI4sI", signature, 36 + len(body), revision, 0, OEM_ID,
                         OEM_TABLE_ID, 1, CREATOR_ID, 1)
    return _with_checksum(bytearray(header + body), 9)


def dsdt(platform: PlatformTables) -> bytes:
    """A DSDT whose AML is ``Name (_S5, Package (4) {0, 0, 0, 0})`` (ACPI 6.4 §7.4.2):
    NameOp 0x08, "_S5_", PackageOp 0x12, PkgLength 6, NumElements 4, four ZeroOps."""
    aml = b"\x08_S5_\x12\x06\x04" + bytes([S5_SLP_TYP]) * 2 + b"\x00\x00"
    return acpi_table(b"DSDT", 1, aml)


def facs() -> bytes:
    """The Firmware ACPI Control Structure (§5.2.10): 64 bytes, no checksum."""
    return struct.pack("<4sIIIII40s", b"FACS", 64, 0, 0, 0, 0, b"")


def fadt(platform: PlatformTables, facs_addr: int, dsdt_addr: int) -> bytes:
    """FADT revision 1 (ACPI 1.0b Table 5-7, 116 bytes); SMI_CMD 0: always in ACPI mode."""
    pm = platform.pm_base or 0
    body = struct.pack(
        "<IIBBHIBBBBIIIIIIIIBBBBBBBBHHHHBBBBB3sI",
        facs_addr, dsdt_addr, 1, 0, platform.sci_irq, 0, 0, 0, 0, 0,
        pm, 0, pm + PM1_CNT_OFFSET if pm else 0, 0, 0, pm + PM_TMR_OFFSET if pm else 0, 0, 0,
        PM1_EVT_LEN if pm else 0, PM1_CNT_LEN if pm else 0, 0, PM_TMR_LEN if pm else 0,
        0, 0, 0, 0,
        0x0FFF, 0xFFFF, 0, 0,  # C2/C3 latencies above 100/1000 µs: not supported
        0, 0, 0, 0, 0x32, b"",  # duty cycle, alarms, RTC century at CMOS 0x32
        FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON)
    return acpi_table(b"FACP", 1, body)


def madt(platform: PlatformTables) -> bytes:
    """MADT (§5.2.12): the LAPICs, the IOAPIC, IRQ 0 → GSI 2, SCI level/high, LINT1 NMI."""
    entries = b"".join(struct.pack("<BBBBI", MADT_LAPIC, 8, cpu, cpu, 1)
                       for cpu in range(platform.num_cpus))
    entries += struct.pack("<BBBBII", MADT_IOAPIC, 12, platform.ioapic_id, 0,
                           platform.ioapic_base, 0)
    entries += struct.pack("<BBBBIH", MADT_ISO, 10, 0, 0, platform.irq0_gsi, 0)
    if platform.pm_base is not None:
        entries += struct.pack("<BBBBIH", MADT_ISO, 10, 0, platform.sci_irq,
                               platform.sci_irq, MPS_INTI_LEVEL_HIGH)
    entries += struct.pack("<BBBHB", MADT_LAPIC_NMI, 6, 0xFF, 0, 1)
    return acpi_table(b"APIC", 1, struct.pack("<II", platform.lapic_base, MADT_PCAT_COMPAT)
                      + entries)


def rsdp(rsdt_addr: int) -> bytes:
    """RSDP revision 0 (§5.2.5.3): 20 bytes, checksum over all of them."""
    return _with_checksum(bytearray(struct.pack("<8sB6sBI", b"RSD PTR ", 0, OEM_ID, 0,
                                                rsdt_addr)), 8)


def mp_config_table(platform: PlatformTables) -> bytes:
    """The MP configuration table (MP spec 1.4 §4.2-4.3): processors, the ISA bus, the
    IOAPIC, one I/O interrupt entry per ISA IRQ but the cascade, and the two local ones."""
    entries = [struct.pack("<BBBBI I 8s", MP_PROCESSOR, cpu, platform.lapic_version,
                           1 | (2 if cpu == 0 else 0), 0x000600, 0x0201, b"")
               for cpu in range(platform.num_cpus)]  # EN | BP; family 6, FPU + APIC
    entries.append(struct.pack("<BB6s", MP_BUS, 0, b"ISA   "))
    entries.append(struct.pack("<BBBBI", MP_IOAPIC, platform.ioapic_id,
                               platform.ioapic_version, 1, platform.ioapic_base))
    for irq in range(16):
        if irq == 2:
            continue
        pin = platform.irq0_gsi if irq == 0 else irq
        entries.append(struct.pack("<BBHBBBB", MP_IOINTR, MP_INT, 0, 0, irq,
                                   platform.ioapic_id, pin))
    entries.append(struct.pack("<BBHBBBB", MP_LOCALINTR, MP_EXTINT, 0, 0, 0, 0xFF, 0))
    entries.append(struct.pack("<BBHBBBB", MP_LOCALINTR, MP_NMI, 0, 0, 0, 0xFF, 1))
    body = b"".join(entries)
    header = struct.pack("<4sHBB8s12sIHHIHBB", b"PCMP", 44 + len(body), 4, 0, b"X86VM   ",
                         b"PC          ", 0, 0, len(entries), platform.lapic_base, 0, 0, 0)
    return _with_checksum(bytearray(header + body), 7)


def mp_floating_pointer(config_addr: int) -> bytes:
    """The MP floating pointer structure (§4.1): 16 bytes, spec 1.4, a configuration table
    present (feature byte 1 = 0), IMCR absent (virtual wire mode)."""
    return _with_checksum(bytearray(struct.pack("<4sIBBBBBBBB", b"_MP_", config_addr, 1, 4,
                                                0, 0, 0, 0, 0, 0)), 10)


@dataclass(frozen=True)
class WrittenTables:
    rsdp: int
    mp_floating_pointer: int
    tables: dict[str, int]
    image: bytes


def build_tables(platform: PlatformTables) -> WrittenTables:
    """Lay the tables out from ``platform.base`` (16-byte aligned, FACS 64-byte aligned)."""
    base = platform.base
    image = bytearray()
    where: dict[str, int] = {}

    def place(name: str, data: bytes, align: int = 16) -> int:
        image.extend(bytes(-len(image) % align))
        where[name] = base + len(image)
        image.extend(data)
        return where[name]

    rsdp_at = place("RSDP", bytes(20))
    mpfp_at = place("MPFP", bytes(16))
    facs_at = place("FACS", facs(), 64)
    dsdt_at = place("DSDT", dsdt(platform))
    fadt_at = place("FACP", fadt(platform, facs_at, dsdt_at))
    madt_at = place("APIC", madt(platform))
    rsdt_at = place("RSDT", acpi_table(b"RSDT", 1, struct.pack("<II", fadt_at, madt_at)))
    mpc_at = place("PCMP", mp_config_table(platform))
    image[rsdp_at - base:rsdp_at - base + 20] = rsdp(rsdt_at)
    image[mpfp_at - base:mpfp_at - base + 16] = mp_floating_pointer(mpc_at)
    if len(image) > TABLES_SIZE:
        raise ValueError(f"firmware tables take {len(image)} bytes, more than {TABLES_SIZE}")
    return WrittenTables(rsdp_at, mpfp_at, where, bytes(image))


def write_firmware_tables(memory, platform: PlatformTables) -> WrittenTables:
    """Write the tables into guest memory (``memory.write``); returns where they are."""
    tables = build_tables(platform)
    memory.write(platform.base, tables.image)
    return tables
