"""virtio-blk (virtio 1.2 §5.2) backed by a raw image file on the host.

Each request is ``struct virtio_blk_req {le32 type; le32 reserved; le64 sector; u8 data[];
u8 status;}`` (§5.2.6): the 16-byte header and any OUT/DISCARD/WRITE_ZEROES payload are
device-readable, the IN/GET_ID data and the final status byte device-writable. The device
makes no assumption about how the driver split them into descriptors (§2.7.4).

Durability (§5.2.6.4): a write is *stable* once completed if the driver did not negotiate
VIRTIO_BLK_F_FLUSH (we offer it), or once a later FLUSH completed. So:

* ``cache=writeback`` (default): OUT goes to the host page cache; FLUSH completes only after
  ``os.fdatasync`` of the image returned. If the driver did not accept VIRTIO_BLK_F_FLUSH,
  every write is synced before it completes (the spec's case 1).
* ``cache=none``: every write, discard and write-zeroes is synced before it completes
  (writethrough); FLUSH syncs too.
* ``cache=unsafe``: nothing is ever synced (FLUSH completes at once) — for throwaway images.

A failed ``fdatasync`` fails every later FLUSH of the image (and, with ``cache=none``, every
later write) with VIRTIO_BLK_S_IOERR: see :meth:`DiskImage.sync`.

Read-only images (``readonly=on``) offer VIRTIO_BLK_F_RO; a write gets VIRTIO_BLK_S_IOERR and
writes nothing (§5.2.6.2). An image is locked with ``flock`` — exclusive for writing, shared
for reading — so two monitors cannot open one image for writing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat
import struct
from dataclasses import dataclass

from x86vm.devices.virtio.device import VIRTIO_ID_BLOCK, VirtioDevice
from x86vm.devices.virtio.queue import DescriptorChain, read_segments, segment_views

SECTOR_SIZE = 512
QUEUE_SIZE = 256
ID_BYTES = 20  # §5.2.6: "a NUL-padded ASCII string up to 20 bytes long"

# Feature bits (§5.2.3).
VIRTIO_BLK_F_SIZE_MAX = 1
VIRTIO_BLK_F_SEG_MAX = 2
VIRTIO_BLK_F_RO = 5
VIRTIO_BLK_F_BLK_SIZE = 6
VIRTIO_BLK_F_FLUSH = 9
VIRTIO_BLK_F_DISCARD = 13
VIRTIO_BLK_F_WRITE_ZEROES = 14

# Request types and status values (§5.2.6).
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
VIRTIO_BLK_T_DISCARD = 11
VIRTIO_BLK_T_WRITE_ZEROES = 13
REQUEST_TYPES = frozenset({VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
                           VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES})
OTHER_TYPE = -1  # key in VirtioBlock.requests for every other type
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2

HEADER = struct.Struct("<IIQ")
SEGMENT = struct.Struct("<QII")  # struct virtio_blk_discard_write_zeroes
WRITE_ZEROES_UNMAP = 1

SIZE_MAX = 1 << 20  # bytes per segment, advertised (§5.2.4 size_max)
SEG_MAX = QUEUE_SIZE - 2  # data descriptors: the chain also holds the header and status
MAX_DISCARD_SECTORS = 1 << 22  # 2 GiB per segment
MAX_DISCARD_SEG = 32
ZERO_CHUNK = 1 << 20

CACHE_MODES = ("writeback", "none", "unsafe")

# struct virtio_blk_config up to write_zeroes_may_unmap and its padding (§5.2.4): 60 bytes.
CONFIG = struct.Struct("<QII HBB I BBHI BBH IIIII B3x")

BLK_CHECKS: dict[str, str] = {
    "blk_request_malformed": "no 16-byte header or no status byte: completed without status",
    "blk_data_not_sectors": "IN/OUT data that is not a multiple of 512 bytes (§5.2.6)",
    "blk_sector_out_of_range": "a request beyond the capacity",
    "blk_write_readonly": "a write to a read-only image (§5.2.6.2)",
    "blk_unsupported_type": "an unknown request type (VIRTIO_BLK_S_UNSUPP)",
    "blk_bad_segments": "DISCARD/WRITE_ZEROES data not whole segments, or too many of them",
    "blk_segment_flags": "an unknown flag, or unmap on DISCARD (VIRTIO_BLK_S_UNSUPP, §5.2.6.2)",
    "blk_host_io_error": "the host's read/write/sync failed (VIRTIO_BLK_S_IOERR)",
}


class DiskImageError(Exception):
    """An image that cannot be used: missing, locked, or of a size that is not whole sectors."""


@dataclass(frozen=True)
class DriveSpec:
    """One ``--drive file=PATH[,format=raw][,readonly=on][,cache=writeback|none|unsafe]``."""

    file: str
    format: str = "raw"
    readonly: bool = False
    cache: str = "writeback"


class DiskImage:
    """An open, locked raw image: positioned I/O on sectors, and ``sync``."""

    def __init__(self, path: str, readonly: bool = False, cache: str = "writeback") -> None:
        if cache not in CACHE_MODES:
            raise DiskImageError(f"drive {path}: cache={cache} is not one of "
                                 f"{', '.join(CACHE_MODES)}")
        self.path, self.readonly, self.cache = path, readonly, cache
        try:
            self.fd = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
                              | os.O_NONBLOCK)  # a FIFO must not block the open
        except OSError as exc:
            raise DiskImageError(f"drive {path}: cannot open: {exc.strerror}") from None
        try:
            mode = os.fstat(self.fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):  # QEMU's file driver: the same
                raise DiskImageError(f"drive {path}: a regular file or block device was "
                                     "expected, but something else was given")
            os.set_blocking(self.fd, True)
            self._lock()
            size = os.lseek(self.fd, 0, os.SEEK_END)
            if size % SECTOR_SIZE:
                raise DiskImageError(f"drive {path}: size {size} is not a multiple of "
                                     f"{SECTOR_SIZE} bytes (pad it, e.g. truncate -s %512)")
        except BaseException:
            os.close(self.fd)
            raise
        self.size = size
        self.sectors = size // SECTOR_SIZE
        self.syncs = 0
        self.sync_failed: str | None = None  # why the first failed fdatasync failed, for ever

    def _lock(self) -> None:
        try:
            fcntl.flock(self.fd, (fcntl.LOCK_SH if self.readonly else fcntl.LOCK_EX)
                        | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DiskImageError(f"drive {self.path}: locked by another process (is "
                                     f"another x86vm using it?)") from None
            raise DiskImageError(f"drive {self.path}: cannot lock: {exc.strerror}") from None

    @property
    def writethrough(self) -> bool:
        return self.cache == "none"

    def read_into(self, offset: int, views: list[memoryview]) -> None:
        for view in views:
            done = 0
            while done < len(view):
                n = os.preadv(self.fd, [view[done:]], offset + done)
                if n == 0:  # the file shrank under us: the rest reads as zeros
                    view[done:] = bytes(len(view) - done)
                    break
                done += n
            offset += len(view)

    def write_from(self, offset: int, views: list[memoryview]) -> None:
        for view in views:
            done = 0
            while done < len(view):
                done += os.pwrite(self.fd, view[done:], offset + done)
            offset += len(view)

    def zero(self, offset: int, length: int, unmap: bool) -> None:
        """Make ``[offset, offset + length)`` read as zeros: punch a hole if allowed, else
        ``FALLOC_FL_ZERO_RANGE``, else (a file system with neither) write zeros."""
        if unmap and _punch_hole(self.fd, offset, length):
            return
        if _zero_range(self.fd, offset, length):
            return
        chunk = bytes(min(length, ZERO_CHUNK))
        while length > 0:
            n = os.pwrite(self.fd, chunk[: min(length, len(chunk))], offset)
            offset += n
            length -= n

    def discard(self, offset: int, length: int) -> None:
        """§5.2.6.2: the device MAY deallocate; a hole if the host supports one."""
        _punch_hole(self.fd, offset, length)

    def sync(self) -> None:
        """Make every completed write durable on the host (``fdatasync``); OSError if not.

        Once an fdatasync failed, every later one fails too (EIO): the host kernel may have
        marked the pages it could not write clean and forgotten the error, so a later
        fdatasync that succeeds would not mean that the earlier writes are on disk."""
        if self.cache == "unsafe":
            return
        if self.sync_failed is not None:
            raise OSError(errno.EIO, f"an earlier sync failed: {self.sync_failed}")
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            self.sync_failed = exc.strerror or str(exc)  # not exc: its traceback pins frames
            raise
        self.syncs += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_FALLOC_FL_ZERO_RANGE = 0x10
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_fallocate = getattr(_libc, "fallocate64", None) or getattr(_libc, "fallocate", None)
if _fallocate is not None:
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    _fallocate.restype = ctypes.c_int


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    if _fallocate is None or length <= 0:
        return False
    return _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0


def _zero_range(fd: int, offset: int, length: int) -> bool:
    if _fallocate is None or length <= 0:
        return False
    return _fallocate(fd, _FALLOC_FL_ZERO_RANGE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0


class VirtioBlock(VirtioDevice):
    """A virtio block device (ID 2) with one request queue."""

    device_id = VIRTIO_ID_BLOCK
    queue_max_sizes = (QUEUE_SIZE,)
    name = "virtio-blk"

    def __init__(self, image: DiskImage, serial: str | None = None) -> None:
        super().__init__()
        self.image = image
        ident = serial if serial is not None else os.path.basename(image.path)
        self.device_ident = ident.encode("ascii", "replace")[:ID_BYTES].ljust(ID_BYTES, b"\0")
        self.requests: dict[int, int] = {}  # requests seen, by type (OTHER_TYPE: the rest)

    @classmethod
    def open(cls, spec: DriveSpec) -> VirtioBlock:
        if spec.format != "raw":
            raise DiskImageError(f"drive {spec.file}: format={spec.format} is not supported "
                                 "(only raw)")
        return cls(DiskImage(spec.file, spec.readonly, spec.cache))

    @property
    def device_features(self) -> int:
        bits = [VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE,
                VIRTIO_BLK_F_FLUSH]
        if self.image.readonly:
            bits.append(VIRTIO_BLK_F_RO)
        else:
            bits += [VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES]
        return sum(1 << b for b in bits)

    def config_space(self) -> bytes:
        return CONFIG.pack(
            self.image.sectors, SIZE_MAX, SEG_MAX,
            0, 0, 0,                      # geometry (not offered)
            SECTOR_SIZE,                  # blk_size
            0, 0, 0, 0,                   # topology (not offered)
            0, 0, 1,                      # writeback, unused0, num_queues
            MAX_DISCARD_SECTORS, MAX_DISCARD_SEG, 1,  # discard: sectors, segments, alignment
            MAX_DISCARD_SECTORS, MAX_DISCARD_SEG,     # write zeroes: sectors, segments
            1,                            # write_zeroes_may_unmap
        )

    def close(self) -> None:
        self.image.close()

    # -- requests ---------------------------------------------------------------------------

    def handle(self, queue_index: int, chain: DescriptorChain) -> int:
        memory = self.memory
        assert memory is not None
        if chain.readable_len < HEADER.size or chain.writable_len < 1:
            self.errors["blk_request_malformed"] += 1
            return 0
        rtype, _reserved, sector = HEADER.unpack(read_segments(memory, chain.readable, 0,
                                                               HEADER.size))
        key = rtype if rtype in REQUEST_TYPES else OTHER_TYPE  # a guest cannot grow the dict
        self.requests[key] = self.requests.get(key, 0) + 1
        data_in = chain.writable_len - 1  # device-writable bytes before the status byte
        status, written = self._execute(chain, rtype, sector, data_in)
        status_view = segment_views(memory, chain.writable, chain.writable_len - 1, 1)
        status_view[0][0] = status
        return written + 1

    def _execute(self, chain: DescriptorChain, rtype: int, sector: int,
                 data_in: int) -> tuple[int, int]:
        """(status, data bytes written into the device-writable part)."""
        try:
            if rtype == VIRTIO_BLK_T_IN:
                status = self._read(chain, sector, data_in)
                return status, data_in if status == VIRTIO_BLK_S_OK else 0
            if rtype == VIRTIO_BLK_T_OUT:
                return self._write(chain, sector), 0
            if rtype == VIRTIO_BLK_T_FLUSH:
                self.image.sync()
                return VIRTIO_BLK_S_OK, 0
            if rtype == VIRTIO_BLK_T_GET_ID:
                n = min(data_in, ID_BYTES)
                views = segment_views(self.memory, chain.writable, 0, n)
                _copy_into(views, self.device_ident[:n])
                return VIRTIO_BLK_S_OK, n
            if rtype in (VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES):
                return self._discard_or_zero(chain, rtype), 0
        except OSError:
            self.errors["blk_host_io_error"] += 1
            return VIRTIO_BLK_S_IOERR, 0
        self.errors["blk_unsupported_type"] += 1
        return VIRTIO_BLK_S_UNSUPP, 0

    def _sector_range(self, sector: int, length: int) -> int | None:
        """The byte offset of ``length`` bytes at ``sector``, or None (counted) if bad."""
        if length % SECTOR_SIZE:
            self.errors["blk_data_not_sectors"] += 1
            return None
        if sector + length // SECTOR_SIZE > self.image.sectors:
            self.errors["blk_sector_out_of_range"] += 1
            return None
        return sector * SECTOR_SIZE

    def _read(self, chain: DescriptorChain, sector: int, length: int) -> int:
        offset = self._sector_range(sector, length)
        if offset is None:
            return VIRTIO_BLK_S_IOERR
        self.image.read_into(offset, segment_views(self.memory, chain.writable, 0, length))
        return VIRTIO_BLK_S_OK

    def _write(self, chain: DescriptorChain, sector: int) -> int:
        if self.image.readonly:
            self.errors["blk_write_readonly"] += 1
            return VIRTIO_BLK_S_IOERR
        length = chain.readable_len - HEADER.size
        offset = self._sector_range(sector, length)
        if offset is None:
            return VIRTIO_BLK_S_IOERR
        self.image.write_from(offset, segment_views(self.memory, chain.readable, HEADER.size,
                                                    length))
        self._written()
        return VIRTIO_BLK_S_OK

    def _written(self) -> None:
        """After a completed write: sync now if writes must be stable on completion."""
        if self.image.writethrough or not self.driver_features >> VIRTIO_BLK_F_FLUSH & 1:
            self.image.sync()

    def _discard_or_zero(self, chain: DescriptorChain, rtype: int) -> int:
        if self.image.readonly:
            self.errors["blk_write_readonly"] += 1
            return VIRTIO_BLK_S_IOERR
        length = chain.readable_len - HEADER.size
        count = length // SEGMENT.size
        if length % SEGMENT.size or not 0 < count <= MAX_DISCARD_SEG:
            self.errors["blk_bad_segments"] += 1
            return VIRTIO_BLK_S_IOERR
        raw = read_segments(self.memory, chain.readable, HEADER.size, length)
        segments = [SEGMENT.unpack_from(raw, i * SEGMENT.size) for i in range(count)]
        allowed = WRITE_ZEROES_UNMAP if rtype == VIRTIO_BLK_T_WRITE_ZEROES else 0
        for sector, num, flags in segments:
            if flags & ~allowed:
                self.errors["blk_segment_flags"] += 1
                return VIRTIO_BLK_S_UNSUPP
            if num > MAX_DISCARD_SECTORS or self._sector_range(sector, num * SECTOR_SIZE) is None:
                if num > MAX_DISCARD_SECTORS:
                    self.errors["blk_bad_segments"] += 1
                return VIRTIO_BLK_S_IOERR
        for sector, num, flags in segments:
            if rtype == VIRTIO_BLK_T_DISCARD:
                self.image.discard(sector * SECTOR_SIZE, num * SECTOR_SIZE)
            else:
                self.image.zero(sector * SECTOR_SIZE, num * SECTOR_SIZE,
                                unmap=bool(flags & WRITE_ZEROES_UNMAP))
        self._written()
        return VIRTIO_BLK_S_OK


def _copy_into(views: list[memoryview], data: bytes) -> None:
    done = 0
    for view in views:
        view[:] = data[done : done + len(view)]
        done += len(view)
