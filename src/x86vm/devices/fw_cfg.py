"""QEMU firmware configuration device (fw_cfg), legacy I/O interface at 0x510/0x511.

QEMU ``docs/specs/fw_cfg.rst``: a 16-bit little-endian write to the selector (0x510) picks an
item and rewinds its data offset to 0; each 8-bit read of the data port (0x511) returns the
next byte of the item, and 0x00 once past its end. Selector bit 15 selects the
architecture-specific item space; bit 14 (the old write channel) is ignored, as are data
writes (QEMU ≥ 2.4). An unknown selector reads as an empty item (all 0x00).

Width rules of QEMU's x86 combined port (``fw_cfg_comb_valid``, checked under QEMU 7.2): a
2-byte write at 0x510 selects; a 1-byte read at either port reads data; a 1-byte write is a
(dropped) data write; any other access (a 2-byte access at 0x511, any 4-byte access, a 2-byte
read) does nothing and reads 0.

Items (``include/standard-headers/linux/qemu_fw_cfg.h`` numbering; integers little-endian):
``FW_CFG_SIGNATURE`` "QEMU", ``FW_CFG_ID`` 1 (traditional interface only, no DMA),
``FW_CFG_RAM_SIZE`` (u64), ``FW_CFG_NB_CPUS`` and ``FW_CFG_MAX_CPUS`` (u16), and
``FW_CFG_FILE_DIR``: a big-endian u32 count, then per file ``{u32 size, u16 select,
u16 reserved, char name[56]}`` (big-endian), files at selectors 0x20 upwards, sorted by name.
"""

from __future__ import annotations

import struct

FW_CFG_PORT = 0x510

FW_CFG_SIGNATURE = 0x00
FW_CFG_ID = 0x01
FW_CFG_RAM_SIZE = 0x03
FW_CFG_NB_CPUS = 0x05
FW_CFG_MAX_CPUS = 0x0F
FW_CFG_FILE_DIR = 0x19
FW_CFG_FILE_FIRST = 0x20
FW_CFG_WRITE_CHANNEL = 0x4000
FW_CFG_ARCH_LOCAL = 0x8000
FW_CFG_ENTRY_MASK = 0xFFFF & ~(FW_CFG_WRITE_CHANNEL | FW_CFG_ARCH_LOCAL)
FW_CFG_MAX_FILE_PATH = 56
FW_CFG_FILE_SLOTS = 0x3FFF - FW_CFG_FILE_FIRST + 1

ID_TRADITIONAL = 0x01

_FILE_ENTRY = struct.Struct(">IHH56s")


class FwCfgError(ValueError):
    """A file that cannot be added (name too long, duplicate, directory full)."""


class FwCfg:
    """Items keyed by selector (bit 15 kept: architecture-local items are a separate space)."""

    def __init__(self, *, ram_size: int, num_cpus: int = 1) -> None:
        self.items: dict[int, bytes] = {
            FW_CFG_SIGNATURE: b"QEMU",
            FW_CFG_ID: struct.pack("<I", ID_TRADITIONAL),
            FW_CFG_RAM_SIZE: struct.pack("<Q", ram_size),
            FW_CFG_NB_CPUS: struct.pack("<H", num_cpus),
            FW_CFG_MAX_CPUS: struct.pack("<H", num_cpus),
        }
        self.files: dict[str, int] = {}  # name -> selector
        self._rebuild_directory()
        self.selector = FW_CFG_SIGNATURE
        self.offset = 0

    def add_file(self, name: str, data: bytes) -> int:
        """Publish ``data`` as a named file; returns its selector."""
        encoded = name.encode("ascii", "strict")
        if not encoded or len(encoded) >= FW_CFG_MAX_FILE_PATH:
            raise FwCfgError(f"fw_cfg file name {name!r}: 1..{FW_CFG_MAX_FILE_PATH - 1} bytes")
        if name in self.files:
            raise FwCfgError(f"fw_cfg file {name!r} already exists")
        if len(self.files) >= FW_CFG_FILE_SLOTS:
            raise FwCfgError("fw_cfg file directory is full")
        selector = FW_CFG_FILE_FIRST + len(self.files)
        self.files[name] = selector
        self.items[selector] = bytes(data)
        self._rebuild_directory()
        return selector

    def _rebuild_directory(self) -> None:
        entries = sorted(self.files.items())
        blob = bytearray(struct.pack(">I", len(entries)))
        for name, selector in entries:
            blob += _FILE_ENTRY.pack(len(self.items[selector]), selector, 0, name.encode())
        self.items[FW_CFG_FILE_DIR] = bytes(blob)

    # -- guest interface -------------------------------------------------------------------

    def select(self, value: int) -> None:
        self.selector = value & (FW_CFG_ARCH_LOCAL | FW_CFG_ENTRY_MASK)
        self.offset = 0

    def read_data(self) -> int:
        item = self.items.get(self.selector, b"")
        if self.offset >= len(item):
            return 0
        byte = item[self.offset]
        self.offset += 1
        return byte

    def read(self, offset: int, size: int) -> int:
        return self.read_data() if size == 1 else 0

    def write(self, offset: int, size: int, value: int) -> None:
        if size == 2 and offset == 0:
            self.select(value & 0xFFFF)
        # 1-byte data writes are ignored (QEMU >= 2.4); other widths are invalid
