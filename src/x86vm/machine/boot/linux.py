"""The Linux x86 boot protocol, entered at the 64-bit entry point
(Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header", "Details of Header Fields",
"64-bit Boot Protocol"; the zero page is ``struct boot_params``, Documentation/arch/x86/
zero-page.rst).

bzImage: the setup header at 0x1f1 (boot_flag 0xAA55, "HdrS", protocol ≥ 2.12 with
XLF_KERNEL_64); the protected-mode kernel starts after ``setup_sects + 1`` sectors and is
loaded at ``pref_address`` (or, if relocatable, at the next ``kernel_alignment`` boundary
with room for ``init_size``); entry at ``code32_start + 0x200``.
vmlinux: an ELF64 loaded by its program headers (physical addresses), entry ``e_entry``.

Both enter in 64-bit mode with the first 4 GiB identity mapped, a GDT with __BOOT_CS 0x10
and __BOOT_DS 0x18 (4 GiB flat), interrupts off and RSI = the zero page.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from x86vm.machine.boot.elf import ELFCLASS64, EM_X86_64, ET_EXEC, load_segments, parse_elf
from x86vm.machine.boot.errors import BootError
from x86vm.machine.boot.layout import (
    FOUR_GIB,
    HIGH_MEMORY,
    PAGE,
    Placement,
    Reservations,
    e820_map,
    join_cmdline,
    write_cstring,
    write_gdt,
    write_identity_page_tables,
)
from x86vm.machine.boot.state import (
    LONG64_CODE,
    LONG64_DATA,
    TSS_SEGMENT,
    EntryState,
    long_mode64,
)
from x86vm.machine.memory import GuestMemory

HDRS = 0x53726448  # "HdrS"
BOOT_FLAG = 0xAA55
MIN_VERSION = 0x020C  # 2.12: xloadflags, XLF_KERNEL_64
SYNTHETIC_VERSION = 0x020F  # what we claim in a zero page built for a vmlinux
LOADED_HIGH = 1 << 0  # loadflags
XLF_KERNEL_64 = 1 << 0  # xloadflags
TYPE_OF_LOADER_UNDEFINED = 0xFF
ENTRY_64_OFFSET = 0x200  # startup_64 relative to the protected-mode kernel (boot.rst)
DEFAULT_INITRD_ADDR_MAX = 0x37FFFFFF  # boot.rst: for protocols without the field
COMMAND_LINE_SIZE = 2048  # x86's COMMAND_LINE_SIZE, for a vmlinux without a header
E820_MAX_ENTRIES = 128  # entries in boot_params.e820_table

# struct setup_header fields: name -> (offset in the zero page / bzImage, struct format).
HEADER = {
    "setup_sects": (0x1F1, "B"),
    "vid_mode": (0x1FA, "H"),
    "boot_flag": (0x1FE, "H"),
    "jump": (0x200, "H"),
    "header": (0x202, "I"),
    "version": (0x206, "H"),
    "type_of_loader": (0x210, "B"),
    "loadflags": (0x211, "B"),
    "code32_start": (0x214, "I"),
    "ramdisk_image": (0x218, "I"),
    "ramdisk_size": (0x21C, "I"),
    "cmd_line_ptr": (0x228, "I"),
    "initrd_addr_max": (0x22C, "I"),
    "kernel_alignment": (0x230, "I"),
    "relocatable_kernel": (0x234, "B"),
    "xloadflags": (0x236, "H"),
    "cmdline_size": (0x238, "I"),
    "setup_data": (0x250, "Q"),
    "pref_address": (0x258, "Q"),
    "init_size": (0x260, "I"),
}
# struct boot_params fields outside the setup header.
ACPI_RSDP_ADDR = 0x070
EXT_RAMDISK_IMAGE = 0x0C0
EXT_RAMDISK_SIZE = 0x0C4
EXT_CMD_LINE_PTR = 0x0C8
E820_ENTRIES = 0x1E8
E820_TABLE = 0x2D0
SETUP_HEADER_START = 0x1F1
SETUP_HEADER_MAX_END = 0x290  # struct boot_params: the header ends before edd_mbr_sig_buffer
ZERO_PAGE_SIZE = 0x1000


def is_bzimage(image: bytes) -> bool:
    return len(image) >= 0x206 and struct.unpack_from("<I", image, 0x202)[0] == HDRS


def header_field(buf: bytes | bytearray, name: str) -> int:
    off, fmt = HEADER[name]
    return struct.unpack_from("<" + fmt, buf, off)[0]


def _set(zero_page: bytearray, name: str, value: int) -> None:
    off, fmt = HEADER[name]
    struct.pack_into("<" + fmt, zero_page, off, value)


def _check_bzimage(image: bytes) -> tuple[int, int]:
    """Validate the setup header; returns (protocol version, offset of the protected-mode
    kernel in the file)."""
    if len(image) < 0x264:
        raise BootError(f"truncated bzImage: {len(image)} bytes, the setup header alone "
                        "ends at 0x264")
    if header_field(image, "header") != HDRS:
        raise BootError("not a bzImage: no \"HdrS\" signature at 0x202")
    if header_field(image, "boot_flag") != BOOT_FLAG:
        raise BootError(f"bzImage boot_flag is {header_field(image, 'boot_flag'):#x}, not 0xaa55")
    version = header_field(image, "version")
    if version < MIN_VERSION:
        raise BootError(f"Linux boot protocol {version >> 8}.{version & 0xFF:02d} is too old: "
                        "the 64-bit entry needs 2.12 or later")
    if not header_field(image, "xloadflags") & XLF_KERNEL_64:
        raise BootError("this kernel has no 64-bit entry point (XLF_KERNEL_64 is clear)")
    if not header_field(image, "loadflags") & LOADED_HIGH:
        raise BootError("zImage (kernel loaded low) is not supported: LOADED_HIGH is clear")
    setup_sects = header_field(image, "setup_sects") or 4
    kernel_offset = (setup_sects + 1) * 512
    if kernel_offset >= len(image):
        raise BootError(f"truncated bzImage: {setup_sects} setup sectors but the file is only "
                        f"{len(image)} bytes")
    return version, kernel_offset


def _place_bzimage(placement: Placement, image: bytes, kernel_offset: int) -> int:
    """Put the protected-mode kernel at pref_address, or relocate it (boot.rst
    "relocatable_kernel", "kernel_alignment", "init_size"); returns the load address."""
    payload = image[kernel_offset:]
    init_size = max(header_field(image, "init_size"), len(payload))
    pref = header_field(image, "pref_address") or HIGH_MEMORY
    align = header_field(image, "kernel_alignment") or 0x200000
    if align & (align - 1) or align < PAGE:
        raise BootError(f"bzImage kernel_alignment {align:#x} is not a power of two ≥ 4 KiB")
    if placement.fits(pref, init_size):
        placement.claim(pref, init_size, "Linux kernel (init_size)")
        load = pref
    elif header_field(image, "relocatable_kernel"):
        load = placement.allocate(init_size, "Linux kernel (init_size)", align=align,
                                  low=HIGH_MEMORY)
    else:
        placement.claim(pref, init_size, "non-relocatable Linux kernel (init_size)")
        load = pref
    placement.memory.write(load, payload)
    return load


def _place_initrd(placement: Placement, initrd: bytes, addr_max: int) -> int:
    """The initrd goes as high as possible, ending at or below initrd_addr_max (inclusive)
    and below 4 GiB, page aligned (boot.rst "initrd_addr_max")."""
    high = min(addr_max + 1, FOUR_GIB)
    try:
        addr = placement.allocate(len(initrd), "initrd", align=PAGE, low=HIGH_MEMORY,
                                  high=high, top_down=True)
    except BootError:
        raise BootError(f"initrd too large: {len(initrd)} bytes do not fit in free RAM below "
                        f"{high:#x} (initrd_addr_max) next to the kernel") from None
    placement.memory.write(addr, initrd)
    return addr


def load_linux(memory: GuestMemory, image: bytes, *, cmdline: str = "",
               initrd: bytes | None = None, cmdline_fragments: Sequence[str] = (),
               reserved: Reservations = (), rsdp: int = 0) -> EntryState:
    """Load a bzImage or an ELF64 vmlinux for the 64-bit boot protocol. The board's
    ``cmdline_fragments`` are appended to ``cmdline``; ``reserved`` ranges go into the
    e820 table as reserved and are kept free of boot data; ``rsdp`` (if not 0) goes into
    ``boot_params.acpi_rsdp_addr``."""
    cmdline = join_cmdline(cmdline, cmdline_fragments)
    placement = Placement(memory, reserved)
    zero_page = bytearray(ZERO_PAGE_SIZE)
    if is_bzimage(image):
        version, kernel_offset = _check_bzimage(image)
        header_end = min(0x202 + image[0x201], SETUP_HEADER_MAX_END, len(image))
        zero_page[SETUP_HEADER_START:header_end] = image[SETUP_HEADER_START:header_end]
        load = _place_bzimage(placement, image, kernel_offset)
        _set(zero_page, "code32_start", load)
        entry = load + ENTRY_64_OFFSET
        cmdline_max = header_field(image, "cmdline_size")
        initrd_max = header_field(image, "initrd_addr_max") or DEFAULT_INITRD_ADDR_MAX
    else:
        elf = parse_elf(image)
        if elf.elf_class != ELFCLASS64 or elf.machine != EM_X86_64:
            raise BootError("the Linux boot protocol needs a bzImage or an x86-64 ELF64 vmlinux")
        if elf.type != ET_EXEC:
            raise BootError(f"ELF type {elf.type} is not ET_EXEC: a shared object or PIE "
                            "program, not a kernel image")
        load_segments(placement, image, elf)
        entry = elf.physical_entry()
        for name, value in (("boot_flag", BOOT_FLAG), ("header", HDRS),
                            ("version", SYNTHETIC_VERSION), ("loadflags", LOADED_HIGH),
                            ("vid_mode", 0xFFFF), ("initrd_addr_max", DEFAULT_INITRD_ADDR_MAX),
                            ("cmdline_size", COMMAND_LINE_SIZE - 1),
                            ("xloadflags", XLF_KERNEL_64)):
            _set(zero_page, name, value)
        cmdline_max = COMMAND_LINE_SIZE - 1
        initrd_max = DEFAULT_INITRD_ADDR_MAX
    if entry >= FOUR_GIB:
        raise BootError(f"Linux entry point {entry:#x} is above the identity-mapped 4 GiB")
    # Fields the loader owns (boot.rst "write"): never pass on what the image file holds.
    for name in ("ramdisk_image", "ramdisk_size", "setup_data"):
        _set(zero_page, name, 0)
    _set(zero_page, "type_of_loader", TYPE_OF_LOADER_UNDEFINED)

    if initrd is not None:
        initrd_addr = _place_initrd(placement, initrd, initrd_max)
        _set(zero_page, "ramdisk_image", initrd_addr & 0xFFFFFFFF)
        _set(zero_page, "ramdisk_size", len(initrd) & 0xFFFFFFFF)
        struct.pack_into("<II", zero_page, EXT_RAMDISK_IMAGE, initrd_addr >> 32,
                         len(initrd) >> 32)

    cmd = write_cstring(placement, cmdline, "kernel command line", max_len=cmdline_max)
    _set(zero_page, "cmd_line_ptr", cmd & 0xFFFFFFFF)
    struct.pack_into("<I", zero_page, EXT_CMD_LINE_PTR, cmd >> 32)

    struct.pack_into("<Q", zero_page, ACPI_RSDP_ADDR, rsdp)
    e820 = e820_map(memory, placement.reserved)
    if len(e820) > E820_MAX_ENTRIES:
        raise BootError(f"{len(e820)} memory map entries; the zero page holds "
                        f"{E820_MAX_ENTRIES}")
    zero_page[E820_ENTRIES] = len(e820)
    for i, e in enumerate(e820):
        struct.pack_into("<QQI", zero_page, E820_TABLE + 20 * i, e.addr, e.size, e.type)

    zp = placement.allocate(ZERO_PAGE_SIZE, "zero page (boot_params)", align=PAGE)
    memory.write(zp, zero_page)
    cr3 = write_identity_page_tables(placement)
    gdt = write_gdt(placement, LONG64_CODE, LONG64_DATA, TSS_SEGMENT)
    return long_mode64(entry, gdt, cr3, rsi=zp)
