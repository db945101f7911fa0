"""Boot loaders against GuestMemory only (no KVM): what each protocol leaves in memory and
in the EntryState. Expected values come from the specs (Multiboot 0.6.96, boot.rst, Xen
start_info.h), from the guests' own ELF files (readelf-equivalent fields) and, for the memory
map, from what QEMU 7.2 + SeaBIOS hand a Multiboot kernel with -m 128 (observed with a probe
guest under QEMU TCG; the same numbers are in guests/expected_qemu.json)."""

from __future__ import annotations

import random
import struct

import pytest

from guests.fixtures import guest_dir  # noqa: F401  (fixture)
from support.guest_asm import write_flat
from support.oracles import require, require_file
from x86vm.machine.boot import BootError, BootModule, detect_format, load_image
from x86vm.machine.boot.elf import parse_elf
from x86vm.machine.boot.layout import e820_map, encode_descriptor, lower_upper_kib
from x86vm.machine.boot.state import LONG64_CODE, LONG64_DATA
from x86vm.machine.memory import GuestMemory

MIB = 1 << 20

# SeaBIOS's int 15h E820 table under QEMU 7.2 (`-machine pc -m 128M` and `-m 4G`), as
# E820_PROBE below prints it: recorded from a live run; test_recorded_seabios_e820_is_current
# reruns QEMU where it is installed. x86vm's machine has RAM at the same places (below 3 GiB,
# the rest from 4 GiB), but neither QEMU's BIOS flash (reserved, 0xfffc0000) nor its AMD
# HyperTransport window (reserved, 0xfd00000000).
SEABIOS_E820 = {
    "128M": [(0x0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2),
             (0x100000, 0x7EE0000, 1), (0x7FE0000, 0x20000, 2), (0xFFFC0000, 0x40000, 2),
             (0xFD00000000, 0x300000000, 2)],
    "4G": [(0x0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2),
           (0x100000, 0xBFEE0000, 1), (0xBFFE0000, 0x20000, 2), (0xFFFC0000, 0x40000, 2),
           (0x100000000, 0x40000000, 1), (0xFD00000000, 0x300000000, 2)],
}
QEMU_ONLY_RANGES = {0xFFFC0000, 0xFD00000000}   # the flash and the HyperTransport window
RAM_LAYOUT = {"128M": [(0, 128 * MIB)], "4G": [(0, 3 << 30), (4 << 30, 1 << 30)]}


def ram_part(table):
    return [entry for entry in table if entry[0] not in QEMU_ONLY_RANGES]


SEABIOS_E820_128M = ram_part(SEABIOS_E820["128M"])

# A boot sector that lists the BIOS's E820 table (ACPI "INT 15H, E820H"): each 20-byte entry
# (base, length, type) goes to QEMU's debug console at 0xe9, then isa-debug-exit ends QEMU.
E820_PROBE = """
.code16
.text
  cli
  xor %ax, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x7c00, %sp
  xor %ebx, %ebx
next:
  mov $0xe820, %eax
  mov $20, %ecx
  mov $0x534d4150, %edx
  mov $0x600, %di
  int $0x15
  jc done
  cmp $0x534d4150, %eax
  jne done
  mov $0x600, %si
  mov $20, %cx
  mov $0xe9, %dx
  rep outsb
  test %ebx, %ebx
  jnz next
done:
  mov $0xf4, %dx
  mov $0, %al
  out %al, %dx
1: hlt
  jmp 1b
.org 510
.word 0xaa55
"""


def seabios_e820_under_qemu(memory: str, tmp_path) -> list[tuple[int, int, int]]:
    import shutil
    import subprocess

    img, out = write_flat(E820_PROBE, tmp_path / "e820.img", 0x7C00), tmp_path / "e820.out"
    done = subprocess.run(
        [shutil.which("qemu-system-x86_64"), "-machine", "pc,accel=tcg", "-m", memory,
         "-display", "none", "-nodefaults", "-no-reboot",
         "-drive", f"file={img},format=raw,if=ide",
         "-chardev", f"file,id=dbg,path={out}", "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=1"], capture_output=True, timeout=60)
    assert done.returncode == 1, done.stderr          # isa-debug-exit: (0 << 1) | 1
    data = out.read_bytes()
    return [struct.unpack_from("<QQI", data, i) for i in range(0, len(data), 20)]


@pytest.fixture
def mem():
    m = GuestMemory()
    m.add_ram(0, 128 * MIB)
    yield m
    m.close()


def image(guest_dir, name):  # noqa: F811
    return (guest_dir / name).read_bytes()


# -- helpers that read back what the loaders wrote ---------------------------------------------

def decode_descriptor(raw: bytes) -> dict:
    lim0, base0, base1, access, flags_lim, base2 = struct.unpack("<HHBBBB", raw[:8])
    flags = flags_lim >> 4
    limit = lim0 | (flags_lim & 0xF) << 16
    g = flags >> 3 & 1
    return dict(base=base0 | base1 << 16 | base2 << 24,
                limit=(limit << 12 | 0xFFF) if g else limit,
                type=access & 0xF, s=access >> 4 & 1, dpl=access >> 5 & 3, present=access >> 7,
                avl=flags & 1, l=flags >> 1 & 1, db=flags >> 2 & 1, g=g)


def check_gdt_matches_state(mem, entry):
    """Every segment register's hidden state equals the GDT descriptor its selector names."""
    for seg in (entry.cs, entry.ds, entry.es, entry.ss, entry.tr):
        index = seg.selector & ~7
        assert index + 7 <= entry.gdt.limit
        d = decode_descriptor(mem.read(entry.gdt.base + index, 8))
        for name, value in d.items():
            assert getattr(seg, name) == value, (hex(seg.selector), name)


def translate(mem, cr3, va):
    """Walk 4-level paging (SDM Vol. 3A §4.5) with 2 MiB pages."""
    pml4e = mem.read_u64(cr3 + 8 * (va >> 39 & 511))
    assert pml4e & 1
    pdpte = mem.read_u64((pml4e & ~0xFFF) + 8 * (va >> 30 & 511))
    assert pdpte & 1 and not pdpte & 0x80
    pde = mem.read_u64((pdpte & ~0xFFF) + 8 * (va >> 21 & 511))
    assert pde & 1 and pde & 0x80 and pde & 2
    return (pde & ~0x1FFFFF & ((1 << 52) - 1)) | (va & 0x1FFFFF)


# -- memory map -----------------------------------------------------------------------------------

@pytest.mark.oracle("qemu", "binutils")
@pytest.mark.parametrize("memory", sorted(SEABIOS_E820))
def test_recorded_seabios_e820_is_current(memory, tmp_path):
    assert seabios_e820_under_qemu(memory, tmp_path) == SEABIOS_E820[memory]


@pytest.mark.parametrize("memory", sorted(SEABIOS_E820))
def test_e820_matches_seabios_under_qemu(memory):
    m = GuestMemory()
    for base, size in RAM_LAYOUT[memory]:
        m.add_ram(base, size)
    try:
        got = [(e.addr, e.size, e.type) for e in e820_map(m)]
    finally:
        m.close()
    assert got == ram_part(SEABIOS_E820[memory])


def test_lower_and_upper_memory_match_qemu(mem):
    assert lower_upper_kib(mem) == (639, 129920)  # QEMU's multiboot_info for -m 128


def test_e820_with_ram_above_4g():
    m = GuestMemory()
    m.add_ram(0, 64 * MIB)
    m.add_ram(1 << 32, 16 * MIB)
    got = [(e.addr, e.size, e.type) for e in e820_map(m)]
    assert got == [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2),
                   (0x100000, 64 * MIB - 0x100000 - 0x20000, 1), (64 * MIB - 0x20000, 0x20000, 2),
                   (1 << 32, 16 * MIB, 1)]
    m.close()


# -- detection ----------------------------------------------------------------------

@pytest.mark.parametrize("name,fmt", [
    ("realmode_hello.bin", "flat"), ("multiboot.elf", "multiboot"), ("tutorial.elf", "multiboot"),
    ("long64_pvh.elf", "pvh"), ("long64_linux.elf", "linux"), ("long64.bzImage", "linux")])
def test_detect_format(guest_dir, name, fmt):  # noqa: F811
    assert detect_format(image(guest_dir, name)) == fmt


def test_detect_bzimage():
    assert detect_format(make_bzimage()) == "linux"


@pytest.mark.parametrize("data,message", [
    (b"", "empty image"),
    (b"\x90" * 600, "unrecognised image"),
    (struct.pack("<III", 0x1BADB002, 3, 0) + b"\0" * 100, "bad checksum"),
    (b"\x7fELF", "truncated ELF"),
])
def test_detect_rejects(data, message):
    with pytest.raises(BootError, match=message):
        detect_format(data)


def test_elf32_without_header_or_note_is_rejected(guest_dir):  # noqa: F811
    data = bytearray(image(guest_dir, "multiboot.elf"))
    off = data.find(struct.pack("<I", 0x1BADB002))
    data[off : off + 4] = b"\0\0\0\0"
    with pytest.raises(BootError, match="ELF32 image with neither"):
        detect_format(bytes(data))


def test_unknown_loader_name(mem):
    with pytest.raises(BootError, match="unknown loader 'coff'"):
        load_image(mem, b"\0" * 512, "coff")


# -- flat ----------------------------------------------------------------------

def test_flat_boot_sector(mem, guest_dir):  # noqa: F811
    data = image(guest_dir, "realmode_hello.bin")
    entry = load_image(mem, data)
    assert mem.read(0x7C00, 512) == data
    assert entry.mode == "real"
    assert (entry.cs.selector, entry.cs.base, entry.rip) == (0, 0, 0x7C00)
    assert entry.ss.base == entry.ds.base == 0


def test_flat_at_other_address(mem):
    entry = load_image(mem, b"\xf4" * 16, "flat", flat_load_addr=0x10000, flat_cs_ip=(0x1000, 0))
    assert (entry.cs.selector, entry.cs.base, entry.rip) == (0x1000, 0x10000, 0)
    assert mem.read(0x10000, 16) == b"\xf4" * 16


@pytest.mark.parametrize("kwargs,message", [
    (dict(flat_load_addr=128 * MIB - 8), "does not fit in RAM"),
    (dict(flat_cs_ip=(0, 0x8000)), "outside the image"),
    (dict(flat_cs_ip=(0x10000, 0)), "does not fit 16-bit"),
    (dict(cmdline="x"), "takes no command line"),
])
def test_flat_errors(mem, kwargs, message):
    with pytest.raises(BootError, match=message):
        load_image(mem, b"\xf4" * 16, "flat", **kwargs)


# -- Multiboot ----------------------------------------------------------------------

def test_multiboot_info(mem, guest_dir):  # noqa: F811
    data = image(guest_dir, "multiboot.elf")
    elf = parse_elf(data)
    module = b"first module line\n"
    entry = load_image(mem, data, cmdline="multiboot.elf hello", modules=[(module, "m arg1")])

    assert entry.mode == "protected32" and not entry.cr0 & (1 << 31)  # paging off
    assert entry.rip == elf.entry == 0x10000C
    assert entry.gprs["rax"] == 0x2BADB002
    check_gdt_matches_state(mem, entry)
    for p in elf.loads:
        assert mem.read(p.paddr, p.filesz) == data[p.offset : p.offset + p.filesz]
        assert mem.read(p.paddr + p.filesz, p.memsz - p.filesz) == bytes(p.memsz - p.filesz)

    info = entry.gprs["rbx"]
    flags, lower, upper = struct.unpack("<III", mem.read(info, 12))
    assert flags == 1 << 0 | 1 << 2 | 1 << 3 | 1 << 6 | 1 << 9
    assert (lower, upper) == (639, 129920)
    assert mem.read_cstring(mem.read_u32(info + 16)) == b"multiboot.elf hello"
    assert mem.read_cstring(mem.read_u32(info + 64)) == b"x86vm"
    count, mods = struct.unpack("<II", mem.read(info + 20, 8))
    assert count == 1
    start, end, string, _ = struct.unpack("<IIII", mem.read(mods, 16))
    assert start % 4096 == 0 and end - start == len(module)  # header flag 0: page aligned
    assert mem.read(start, len(module)) == module
    assert mem.read_cstring(string) == b"m arg1"
    assert start >= max(p.paddr + p.memsz for p in elf.loads)  # not over the kernel
    length, addr = struct.unpack("<II", mem.read(info + 44, 8))
    entries = [struct.unpack("<IQQI", mem.read(addr + off, 24)) for off in range(0, length, 24)]
    assert [(a, s, t) for size, a, s, t in entries] == SEABIOS_E820_128M
    assert all(size == 20 for size, *_ in entries)


def aout_kludge_image(load_addr=0x200000, bss=0x1000, entry_off=32, flags=0x10003):
    """A Multiboot image loaded by its address fields (§3.1.3): header at file offset 0."""
    code = b"\xfa\xf4" * 8
    header = struct.pack("<III", 0x1BADB002, flags, -(0x1BADB002 + flags) & 0xFFFFFFFF)
    size = 32 + len(code)
    header += struct.pack("<IIIII", load_addr, load_addr, load_addr + size, load_addr + size + bss,
                          load_addr + entry_off)
    return header + code


def test_multiboot_aout_kludge(mem):
    data = aout_kludge_image()
    entry = load_image(mem, data)
    assert entry.rip == 0x200020
    assert mem.read(0x200000, len(data)) == data
    assert mem.read(0x200000 + len(data), 0x1000) == bytes(0x1000)


@pytest.mark.parametrize("data,message", [
    (aout_kludge_image(load_addr=0x9F000), "overlaps|outside usable RAM"),  # EBDA
    (aout_kludge_image(load_addr=200 * MIB), "outside usable RAM"),
    (aout_kludge_image(entry_off=0x5000), "entry_addr .* outside"),
    (aout_kludge_image(flags=0x10003 | 1 << 3), "requires features 0x8"),
    (aout_kludge_image()[:20], "truncated Multiboot header"),
])
def test_multiboot_errors(mem, data, message):
    with pytest.raises(BootError, match=message):
        load_image(mem, data, "multiboot")


def test_multiboot_truncated_elf(mem, guest_dir):  # noqa: F811
    data = image(guest_dir, "multiboot.elf")
    with pytest.raises(BootError, match="truncated ELF"):
        load_image(mem, data[:0x1100], "multiboot")


# -- Linux 64-bit boot protocol --------------------------------------------------------------

def make_bzimage(*, version=0x020F, setup_sects=4, payload=b"\x90" * 0x800, pref=0x1000000,
                 init_size=0x400000, relocatable=1, align=0x200000, xloadflags=1,
                 initrd_addr_max=0x7FFFFFFF, cmdline_size=255):
    """A bzImage with just the setup header fields boot.rst defines (offsets from there)."""
    setup = bytearray(512 * (setup_sects + 1))
    fields = {0x1F1: ("B", setup_sects), 0x1FA: ("H", 0xFFFF), 0x1FE: ("H", 0xAA55),
              0x200: ("H", 0x66EB), 0x201: ("B", 0x66), 0x202: ("I", 0x53726448),
              0x206: ("H", version), 0x211: ("B", 1), 0x214: ("I", 0x100000),
              0x22C: ("I", initrd_addr_max), 0x230: ("I", align), 0x234: ("B", relocatable),
              0x236: ("H", xloadflags), 0x238: ("I", cmdline_size), 0x258: ("Q", pref),
              0x260: ("I", init_size)}
    for off, (fmt, value) in fields.items():
        struct.pack_into("<" + fmt, setup, off, value)
    return bytes(setup) + payload


def test_bzimage_zero_page(mem):
    data = make_bzimage()
    initrd = bytes(range(256)) * 40
    entry = load_image(mem, data, cmdline="console=ttyS0 quiet", initrd=initrd)
    load = 0x1000000
    assert mem.read(load, 0x800) == data[5 * 512 :]
    assert entry.mode == "long64" and entry.rip == load + 0x200
    assert entry.cs.selector == 0x10 and entry.ds.selector == entry.ss.selector == 0x18
    assert entry.rflags & (1 << 9) == 0  # interrupts off
    check_gdt_matches_state(mem, entry)
    assert encode_descriptor(LONG64_CODE)[5] & 0xA == 0xA  # execute/read
    assert encode_descriptor(LONG64_DATA)[5] & 0xA == 0x2  # read/write

    zp = entry.gprs["rsi"]
    assert zp % 4096 == 0
    zero_page = mem.read(zp, 4096)
    header_end = 0x202 + data[0x201]
    changed = {0x210, 0x214, 0x215, 0x216, 0x217, *range(0x218, 0x220), *range(0x228, 0x22C)}
    for off in range(0x1F1, header_end):
        if off not in changed:
            assert zero_page[off] == data[off], hex(off)
    assert zero_page[0x210] == 0xFF  # type_of_loader: undefined
    assert struct.unpack_from("<I", zero_page, 0x214)[0] == load  # code32_start
    assert mem.read_cstring(struct.unpack_from("<I", zero_page, 0x228)[0]) == \
        b"console=ttyS0 quiet"
    image_at, size = struct.unpack_from("<II", zero_page, 0x218)
    assert size == len(initrd) and image_at % 4096 == 0
    assert mem.read(image_at, size) == initrd
    assert image_at + size <= 0x7FE0000  # below the firmware window: highest usable RAM
    assert image_at + size > 0x7FE0000 - 4096  # placed as high as possible
    n = zero_page[0x1E8]
    e820 = [struct.unpack_from("<QQI", zero_page, 0x2D0 + 20 * i) for i in range(n)]
    assert e820 == SEABIOS_E820_128M

    cr3 = entry.cr3
    for va in (0, zp, load + 0x200, 0x7FFFF000, 0xFF000000, 0xFFFFFFFF):
        assert translate(mem, cr3, va) == va


def test_bzimage_loader_fields_are_not_taken_from_the_file(mem):
    data = bytearray(make_bzimage())
    struct.pack_into("<II", data, 0x218, 0x1234000, 0x1000)  # ramdisk_image, ramdisk_size
    struct.pack_into("<Q", data, 0x250, 0xDEAD000)  # setup_data
    zp = load_image(mem, bytes(data)).gprs["rsi"]
    assert mem.read(zp + 0x218, 8) == bytes(8) and mem.read_u64(zp + 0x250) == 0


def test_bzimage_relocates_when_pref_address_is_out_of_ram(mem):
    entry = load_image(mem, make_bzimage(pref=0x10000000, align=0x400000))
    load = entry.rip - 0x200
    assert load % 0x400000 == 0 and load >= 0x100000
    assert mem.read(load, 0x800) == b"\x90" * 0x800


def test_bzimage_reserves_init_size_not_just_the_file(mem):
    """boot.rst "init_size": the kernel needs that much linear memory from its load address
    before it reads the memory map -- nothing the loader places (initrd, command line, zero
    page) may sit in [load, load + init_size), though the file's payload is far smaller.
    Here initrd_addr_max lets the initrd go anywhere below the end of that range."""
    init_size = 32 * MIB
    data = make_bzimage(pref=16 * MIB, init_size=init_size,
                        initrd_addr_max=16 * MIB + init_size - 1)
    entry = load_image(mem, data, cmdline="console=ttyS0", initrd=bytes(4 * MIB))
    load = entry.rip - 0x200
    zp = entry.gprs["rsi"]
    initrd_at, initrd_size = struct.unpack_from("<II", mem.read(zp + 0x218, 8))
    cmdline_at = mem.read_u32(zp + 0x228)
    for start, size in ((initrd_at, initrd_size), (cmdline_at, 14), (zp, 4096)):
        assert start + size <= load or start >= load + init_size, hex(start)
    assert initrd_at + initrd_size > load - MIB     # still as high as the kernel allows


def test_relocated_bzimage_gets_room_for_init_size(mem):
    """A relocatable kernel moved off its pref_address lands where init_size bytes fit in
    usable RAM (boot.rst "relocatable_kernel", "init_size")."""
    init_size = 100 * MIB
    entry = load_image(mem, make_bzimage(pref=0x10000000, align=0x400000, init_size=init_size))
    load = entry.rip - 0x200
    assert load % 0x400000 == 0 and load >= 0x100000
    assert load + init_size <= 0x7FE0000      # the end of usable RAM (SEABIOS_E820_128M)


@pytest.mark.parametrize("kwargs,load_kwargs,message", [
    (dict(version=0x020B), {}, "protocol 2.11 is too old"),
    (dict(xloadflags=0), {}, "no 64-bit entry"),
    (dict(pref=0x10000000, relocatable=0), {}, "outside usable RAM"),
    (dict(initrd_addr_max=0x2000000 - 1), dict(initrd=bytes(20 * MIB)), "initrd too large"),
    ({}, dict(initrd=bytes(130 * MIB)), "initrd too large"),
    ({}, dict(cmdline="x" * 256), "limit is 255"),
])
def test_bzimage_errors(mem, kwargs, load_kwargs, message):
    with pytest.raises(BootError, match=message):
        load_image(mem, make_bzimage(**kwargs), **load_kwargs)


def test_bzimage_setup_sects_past_the_end(mem):
    data = bytearray(make_bzimage())
    data[0x1F1] = 200
    with pytest.raises(BootError, match="truncated bzImage"):
        load_image(mem, bytes(data))


def test_bzimage_bad_boot_flag(mem):
    data = bytearray(make_bzimage())
    data[0x1FE:0x200] = b"\0\0"
    with pytest.raises(BootError, match="boot_flag"):
        load_image(mem, bytes(data))


def test_vmlinux_elf64(mem, guest_dir):  # noqa: F811
    data = image(guest_dir, "long64_linux.elf")
    elf = parse_elf(data)
    entry = load_image(mem, data, "linux", cmdline="console=ttyS0", initrd=b"RD" * 100)
    assert entry.mode == "long64" and entry.rip == elf.entry == 0x100000
    zp = entry.gprs["rsi"]
    assert mem.read(zp + 0x202, 4) == b"HdrS" and mem.read_u16(zp + 0x1FE) == 0xAA55
    assert mem.read_cstring(mem.read_u32(zp + 0x228)) == b"console=ttyS0"
    assert mem.read(mem.read_u32(zp + 0x218), 200) == b"RD" * 100
    assert mem.read_u32(zp + 0x218) + 200 <= 0x37FFFFFF + 1
    assert translate(mem, entry.cr3, entry.rip) == entry.rip
    check_gdt_matches_state(mem, entry)


def test_bzimage_guest_loads_at_pref_address(mem, guest_dir):  # noqa: F811
    data = image(guest_dir, "long64.bzImage")
    entry = load_image(mem, data, cmdline="console=ttyS0")
    assert entry.rip == 0x1000000 + 0x200
    assert mem.read(0x1000000, len(data) - 0x400) == data[0x400:]
    zp = entry.gprs["rsi"]
    assert mem.read_u32(zp + 0x214) == 0x1000000  # code32_start
    assert mem.read_u32(zp + 0x260) == struct.unpack_from("<I", data, 0x260)[0]  # init_size


def test_linux_rejects_modules(mem):
    with pytest.raises(BootError, match="no modules"):
        load_image(mem, make_bzimage(), modules=[b"x"])


# -- PVH ----------------------------------------------------------------------

def test_pvh_start_info(mem, guest_dir):  # noqa: F811
    data = image(guest_dir, "long64_pvh.elf")
    elf = parse_elf(data)
    note = [n for n in elf.notes if n.name == b"Xen" and n.type == 18][0]
    initrd = b"initrd contents"
    entry = load_image(mem, data, cmdline="console=ttyS0", initrd=initrd,
                       modules=[BootModule(b"second", "two")])
    assert entry.mode == "protected32" and not entry.cr0 & (1 << 31)
    assert entry.rip == int.from_bytes(note.desc, "little") == 0x100000
    check_gdt_matches_state(mem, entry)
    info = entry.gprs["rbx"]
    (magic, version, flags, nr_modules, modlist, cmdline, rsdp, memmap, memmap_entries,
     _) = struct.unpack("<IIIIQQQQII", mem.read(info, 56))
    assert (magic, version, flags, nr_modules, rsdp) == (0x336EC578, 1, 0, 2, 0)
    assert mem.read_cstring(cmdline) == b"console=ttyS0"
    paddr, size, mod_cmdline, _ = struct.unpack("<QQQQ", mem.read(modlist, 32))
    assert mem.read(paddr, size) == initrd
    paddr, size, mod_cmdline, _ = struct.unpack("<QQQQ", mem.read(modlist + 32, 32))
    assert mem.read(paddr, size) == b"second" and mem.read_cstring(mod_cmdline) == b"two"
    table = [struct.unpack("<QQII", mem.read(memmap + 24 * i, 24))[:3]
             for i in range(memmap_entries)]
    assert table == SEABIOS_E820_128M


def test_overlapping_segments_are_rejected(mem, guest_dir):  # noqa: F811
    data = bytearray(image(guest_dir, "long64_pvh.elf"))
    elf = parse_elf(bytes(data))
    phoff = struct.unpack_from("<Q", data, 32)[0]
    second = [i for i, p in enumerate(elf.segments) if p.type == 1][1]
    struct.pack_into("<Q", data, phoff + 56 * second + 24, elf.loads[0].paddr + 0x10)  # p_paddr
    with pytest.raises(BootError, match="ELF segment 1 .* overlaps ELF segment 0"):
        load_image(mem, bytes(data))


def test_pvh_note_missing(mem, guest_dir):  # noqa: F811
    with pytest.raises(BootError, match="no PVH entry"):
        load_image(mem, image(guest_dir, "long64_linux.elf"), "pvh")


# -- untrusted images ------------------------------------------------------------------------

DAMAGE_TARGETS = {  # image -> byte range worth damaging (headers)
    "multiboot.elf": (0, 0x200), "long64_pvh.elf": (0, 0x200), "long64_linux.elf": (0, 0x200),
    "tutorial.elf": (0, 0x200), "long64.bzImage": (0x1F1, 0x270), "bzimage": (0x1F1, 0x270),
    "aout": (0, 32),
}


@pytest.mark.parametrize("name", list(DAMAGE_TARGETS))
def test_damaged_images_fail_cleanly(guest_dir, name):  # noqa: F811
    """Truncated or byte-damaged images load or raise BootError; nothing else escapes."""
    data = {"bzimage": make_bzimage, "aout": aout_kludge_image}.get(
        name, lambda: image(guest_dir, name))()
    lo, hi = DAMAGE_TARGETS[name]
    rng = random.Random(name)
    variants = [data[:n] for n in range(0, len(data), max(1, len(data) // 64))]
    for _ in range(150):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(lo, min(hi, len(data)))] = rng.choice(
                (0, 0xFF, 0x80, rng.randrange(256)))
        variants.append(bytes(damaged))
    for variant in variants:
        m = GuestMemory()
        m.add_ram(0, 16 * MIB)
        try:
            load_image(m, variant, cmdline="x", initrd=b"i")
        except BootError:
            pass
        finally:
            m.close()


@pytest.mark.parametrize("path", ["/usr/bin/true", "/usr/lib/x86_64-linux-gnu/libc.so.6"])
def test_elf_notes_match_readelf(path):
    """PT_NOTE parsing (gABI "Note Section": 8-byte aligned notes such as GNU properties align
    offsets, not sizes) gives the notes readelf lists; such a file then fails for what it is
    (no bootable entry), not as a "truncated note"."""
    import re
    import subprocess

    from x86vm.machine.boot.elf import parse_elf

    require("binutils")
    require_file(path)
    image = open(path, "rb").read()
    listed = subprocess.run(["readelf", "-lnW", path], capture_output=True, text=True).stdout
    segments = listed.split("Displaying notes found in:")
    expected = []
    for block in segments[1:]:
        expected += re.findall(r"^\s+(\S+)\s+0x[0-9a-f]+\s+", block, re.M)
    got = [n.name.decode() for n in parse_elf(image).notes]
    assert got == expected


def test_user_program_is_not_a_kernel(mem):
    """A PIE user program (ET_DYN, like /usr/bin/true) is refused with a reason instead of
    being loaded at physical 0 and run."""
    with pytest.raises(BootError, match="not ET_EXEC"):
        load_image(mem, open("/usr/bin/true", "rb").read())
