"""Boot loaders: put a guest image in memory and return its :class:`EntryState`.

``detect_format`` picks the loader from the image, in this order (QEMU's ``-kernel`` checks
Multiboot first too):

1. ``multiboot`` — a valid Multiboot v1 header in the first 8192 bytes;
2. ``linux``     — a bzImage ("HdrS" at 0x202);
3. ``pvh``       — an ELF with the Xen PHYS32_ENTRY note;
4. ``linux``     — any other x86-64 ELF64 (a vmlinux, entered at e_entry in 64-bit mode);
5. ``flat``      — a boot sector (0x55AA at offset 510).

Anything else is a :class:`BootError`; ``load_image(..., fmt="flat")`` loads any binary flat.
"""

from __future__ import annotations

from collections.abc import Sequence

from x86vm.machine.boot import bios, elf, flat, linux, multiboot, pvh
from x86vm.machine.boot.errors import BootError
from x86vm.machine.boot.firmware import PlatformTables, write_firmware_tables
from x86vm.machine.boot.layout import BootModule, ModuleSpec, Reservations, as_modules
from x86vm.machine.boot.state import EntryState
from x86vm.machine.memory import GuestMemory

FORMATS = ("flat", "multiboot", "linux", "pvh")

__all__ = ["FORMATS", "BootError", "BootModule", "detect_format", "load_image"]


def detect_format(image: bytes) -> str:
    """'flat' | 'multiboot' | 'linux' | 'pvh' for ``image``, or a BootError saying why not."""
    image = bytes(image)
    if not image:
        raise BootError("empty image")
    if multiboot.find_header(image) is not None:
        return "multiboot"
    if linux.is_bzimage(image):
        return "linux"
    if elf.is_elf(image):
        parsed = elf.parse_elf(image)
        if pvh.pvh_entry(parsed) is not None:
            return "pvh"
        if parsed.elf_class == elf.ELFCLASS64 and parsed.machine == elf.EM_X86_64:
            return "linux"
        raise BootError("ELF32 image with neither a Multiboot header nor a PVH note")
    if flat.is_boot_sector(image):
        return "flat"
    bad = multiboot.bad_checksum_offset(image)
    if bad is not None:
        raise BootError(f"Multiboot header at {bad:#x} has a bad checksum")
    raise BootError("unrecognised image: not Multiboot, bzImage, ELF or a boot sector "
                    "(choose the flat loader explicitly for a raw binary)")


def load_image(memory: GuestMemory, image: bytes, fmt: str | None = None, *,
               cmdline: str = "", initrd: bytes | None = None,
               modules: Sequence[ModuleSpec] = (), flat_load_addr: int = 0x7C00,
               flat_cs_ip: tuple[int, int] = (0, 0x7C00),
               cmdline_fragments: Sequence[str] = (),
               reserved: Reservations = (),
               firmware: PlatformTables | None = None) -> EntryState:
    """Load ``image`` into ``memory`` with the loader ``fmt`` (detected when None).

    ``modules`` are bytes, ``(bytes, cmdline)`` pairs or :class:`BootModule`; with Multiboot
    and PVH the initrd becomes the first module. What the board's devices need
    (``PcBoard.cmdline_fragments``, ``PcBoard.reserved``): the Linux and PVH loaders append
    the fragments to the command line (they are Linux parameters such as
    ``virtio_mmio.device=``), and every loader with a memory map reports the ``reserved``
    ``(address, size)`` ranges as reserved and places nothing there. With ``firmware``
    (``PcBoard.firmware``) the Multiboot, Linux and PVH loaders write the MP and ACPI tables
    (machine/boot/firmware.py) and pass the RSDP where the protocol has a field for it.
    Raises :class:`BootError` for any bad image or option.
    """
    image = bytes(image)
    fmt = detect_format(image) if fmt is None else fmt
    if fmt not in FORMATS:
        raise BootError(f"unknown loader {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "flat":
        if cmdline or initrd is not None or modules:
            raise BootError("a flat binary takes no command line, initrd or modules")
        return flat.load_flat(memory, image, load_addr=flat_load_addr, cs_ip=flat_cs_ip)
    rsdp = 0
    if firmware is not None:
        rsdp = write_firmware_tables(memory, firmware).rsdp
    if fmt == "linux":
        if modules:
            raise BootError("the Linux boot protocol takes no modules (use the initrd)")
        return linux.load_linux(memory, image, cmdline=cmdline, initrd=initrd,
                                cmdline_fragments=cmdline_fragments, reserved=reserved,
                                rsdp=rsdp)
    mods = as_modules(list(modules), initrd)
    if fmt == "multiboot":
        entry = multiboot.load_multiboot(memory, image, cmdline=cmdline, modules=mods,
                                         reserved=reserved)
        if firmware is not None and firmware.bios_ivt:  # what SeaBIOS leaves (qemu -kernel)
            bios.write_ivt(memory)
            entry = bios.chipset_init_stub(memory, entry, firmware.init_writes)
        return entry
    return pvh.load_pvh(memory, image, cmdline=cmdline, modules=mods,
                        cmdline_fragments=cmdline_fragments, reserved=reserved, rsdp=rsdp)
