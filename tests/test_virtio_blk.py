"""virtio-blk (virtio 1.2 §5.2) over virtio-mmio, driven through the MMIO bus by the Python
driver: every request type, read-only images, durability (FLUSH and cache=none call
fdatasync before the used ring says "done"), image checks and the lock."""

from __future__ import annotations

import os
import struct

import pytest

from virtio_driver import WINDOW, Driver, new_memory
from x86vm.devices.virtio import mmio as R
from x86vm.devices.virtio.blk import (
    SECTOR_SIZE,
    VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_WRITE_ZEROES,
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES,
    DiskImage,
    DiskImageError,
    DriveSpec,
    VirtioBlock,
)
from x86vm.devices.virtio.mmio import VirtioMmio
from x86vm.machine.irq import NullIrqLine

IMAGE_SECTORS = 256  # 128 KiB


class Blk:
    """A block device on a bus with a started driver; ``request`` runs one request."""

    def __init__(self, path, readonly=False, cache="writeback", accept=None, indirect=False):
        self.mem = new_memory()
        self.irq = NullIrqLine()
        self.dev = VirtioBlock.open(DriveSpec(str(path), readonly=readonly, cache=cache))
        self.transport = VirtioMmio(self.dev, self.mem, self.irq)
        self.mem.add_mmio(WINDOW, R.WINDOW_SIZE, self.transport)
        self.drv = Driver(self.mem)
        self.q = self.drv.start(accept=accept)
        self.indirect = indirect

    def request(self, rtype, sector=0, out=b"", in_len=0):
        """Returns (status, data read, used length)."""
        a = self.drv.heap
        hdr = a.alloc(16)
        self.mem.write(hdr, struct.pack("<IIQ", rtype, 0, sector))
        bufs = [(hdr, 16, False)]
        if out:
            o = a.alloc(len(out))
            self.mem.write(o, out)
            bufs.append((o, len(out), False))
        data = a.alloc(in_len) if in_len else 0
        if in_len:
            bufs.append((data, in_len, True))
        status = a.alloc(1)
        self.mem.write_u8(status, 0xFF)
        bufs.append((status, 1, True))
        head = self.q.add(bufs, indirect=self.indirect)
        self.q.kick()
        used = self.q.take_used()
        assert [h for h, _ in used] == [head]
        read = self.mem.read(data, in_len) if in_len else b""
        self.drv.heap.next = 0x20000  # requests reuse the same scratch area
        return self.mem.read_u8(status), read, used[0][1]

    def close(self):
        self.transport.close()
        self.mem.close()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * (IMAGE_SECTORS * SECTOR_SIZE // 256))
    return path


@pytest.fixture
def blk(image):
    b = Blk(image)
    yield b
    b.close()


def test_config_space(blk):
    d = blk.drv
    assert d.read(R.DEVICE_ID) == 2
    assert d.config(0, 4) | d.config(4, 4) << 32 == IMAGE_SECTORS  # capacity, 512-byte sectors
    assert d.config(20, 4) == 512  # blk_size
    assert d.config(12, 4) == 254  # seg_max = queue size - 2
    assert d.config(8, 4) == 1 << 20  # size_max
    assert d.config(0, 8) == IMAGE_SECTORS  # a 64-bit access to the 64-bit field
    features = d.device_features()
    for bit in (VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES):
        assert features >> bit & 1
    assert not features >> VIRTIO_BLK_F_RO & 1


@pytest.mark.parametrize("indirect", [False, True])
def test_read_write_roundtrip(image, indirect):
    blk = Blk(image, indirect=indirect)
    try:
        status, data, used = blk.request(VIRTIO_BLK_T_IN, sector=1, in_len=1024)
        assert status == VIRTIO_BLK_S_OK and used == 1025
        assert data == image.read_bytes()[512:1536]
        payload = os.urandom(2048)
        status, _, used = blk.request(VIRTIO_BLK_T_OUT, sector=10, out=payload)
        assert status == VIRTIO_BLK_S_OK and used == 1
        assert image.read_bytes()[10 * 512 : 14 * 512] == payload
        assert blk.request(VIRTIO_BLK_T_IN, sector=10, in_len=2048)[1] == payload
    finally:
        blk.close()


def test_header_and_data_in_one_descriptor(blk):
    """The device must not assume the header is a descriptor of its own (§2.7.4)."""
    mem, a = blk.mem, blk.drv.heap
    payload = b"\xab" * 512
    buf = a.alloc(16 + 512)
    mem.write(buf, struct.pack("<IIQ", VIRTIO_BLK_T_OUT, 0, 3) + payload)
    st = a.alloc(1)
    blk.q.add([(buf, 16 + 512, False), (st, 1, True)])
    blk.q.kick()
    assert blk.q.take_used()[0][1] == 1 and mem.read_u8(st) == VIRTIO_BLK_S_OK
    assert blk.request(VIRTIO_BLK_T_IN, sector=3, in_len=512)[1] == payload


def test_sector_ranges_checked(blk):
    last = IMAGE_SECTORS - 1
    assert blk.request(VIRTIO_BLK_T_IN, sector=last, in_len=512)[0] == VIRTIO_BLK_S_OK
    status, _, used = blk.request(VIRTIO_BLK_T_IN, sector=last, in_len=1024)
    assert status == VIRTIO_BLK_S_IOERR and used == 1
    assert blk.request(VIRTIO_BLK_T_OUT, sector=IMAGE_SECTORS, out=b"x" * 512)[0] == \
        VIRTIO_BLK_S_IOERR
    assert blk.request(VIRTIO_BLK_T_IN, sector=(1 << 64) - 1, in_len=512)[0] == VIRTIO_BLK_S_IOERR
    assert blk.request(VIRTIO_BLK_T_IN, sector=0, in_len=100)[0] == VIRTIO_BLK_S_IOERR
    assert blk.dev.errors["blk_sector_out_of_range"] == 3
    assert blk.dev.errors["blk_data_not_sectors"] == 1


def test_get_id(blk):
    status, data, used = blk.request(VIRTIO_BLK_T_GET_ID, in_len=20)
    assert status == VIRTIO_BLK_S_OK and used == 21
    assert data == b"disk.img".ljust(20, b"\0")


def test_unknown_type_unsupported(blk):
    status, _, _ = blk.request(99, in_len=0)
    assert status == VIRTIO_BLK_S_UNSUPP and blk.dev.errors["blk_unsupported_type"] == 1


def test_malformed_requests_complete_without_status(blk):
    a, mem = blk.drv.heap, blk.mem
    hdr = a.alloc(8)  # a header of 8 bytes only
    st = a.alloc(1)
    head = blk.q.add([(hdr, 8, False), (st, 1, True)])
    blk.q.kick()
    assert blk.q.take_used() == [(head, 0)]
    hdr = a.alloc(16)
    mem.write(hdr, struct.pack("<IIQ", VIRTIO_BLK_T_IN, 0, 0))
    head = blk.q.add([(hdr, 16, False)])  # no status byte at all
    blk.q.kick()
    assert blk.q.take_used() == [(head, 0)]
    assert blk.dev.errors["blk_request_malformed"] == 2
    assert not blk.drv.read(R.STATUS) & R.DEVICE_NEEDS_RESET


def segments(*segs):
    return b"".join(struct.pack("<QII", s, n, f) for s, n, f in segs)


def test_write_zeroes(blk, image):
    status, _, _ = blk.request(VIRTIO_BLK_T_WRITE_ZEROES, out=segments((2, 2, 0), (8, 1, 1)))
    assert status == VIRTIO_BLK_S_OK
    data = image.read_bytes()
    assert data[2 * 512 : 4 * 512] == bytes(1024) and data[8 * 512 : 9 * 512] == bytes(512)
    assert data[4 * 512 : 5 * 512] != bytes(512)
    assert blk.request(VIRTIO_BLK_T_WRITE_ZEROES, out=segments((0, 1, 2)))[0] == \
        VIRTIO_BLK_S_UNSUPP  # unknown flag bit
    assert blk.request(VIRTIO_BLK_T_WRITE_ZEROES, out=segments((IMAGE_SECTORS, 1, 0)))[0] == \
        VIRTIO_BLK_S_IOERR
    assert blk.request(VIRTIO_BLK_T_WRITE_ZEROES, out=b"\0" * 15)[0] == VIRTIO_BLK_S_IOERR


def test_discard(blk, image):
    status, _, _ = blk.request(VIRTIO_BLK_T_DISCARD, out=segments((16, 8, 0)))
    assert status == VIRTIO_BLK_S_OK
    # §5.2.6.2: DISCARD with unmap set is UNSUPP
    assert blk.request(VIRTIO_BLK_T_DISCARD, out=segments((16, 8, 1)))[0] == VIRTIO_BLK_S_UNSUPP
    assert blk.dev.errors["blk_segment_flags"] == 1


def test_readonly(image):
    before = image.read_bytes()
    blk = Blk(image, readonly=True)
    try:
        assert blk.drv.device_features() >> VIRTIO_BLK_F_RO & 1
        assert blk.request(VIRTIO_BLK_T_OUT, sector=0, out=b"\xff" * 512)[0] == VIRTIO_BLK_S_IOERR
        assert blk.request(VIRTIO_BLK_T_WRITE_ZEROES, out=segments((0, 1, 0)))[0] == \
            VIRTIO_BLK_S_IOERR
        assert blk.request(VIRTIO_BLK_T_IN, sector=0, in_len=512)[0] == VIRTIO_BLK_S_OK
        assert blk.dev.errors["blk_write_readonly"] == 2
    finally:
        blk.close()
    assert image.read_bytes() == before


# -- durability ----------------------------------------------------------------------------

@pytest.fixture
def journal(monkeypatch):
    """Records pwrite and fdatasync calls; each fdatasync notes the used idx at that moment."""
    events = []
    real_pwrite, real_sync = os.pwrite, os.fdatasync

    def pwrite(fd, data, offset):
        events.append(("pwrite", offset))
        return real_pwrite(fd, data, offset)

    def fdatasync(fd):
        events.append(("fdatasync", journal_state["used"]()))
        real_sync(fd)

    journal_state = {"used": lambda: None}
    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return events, journal_state


def used_idx(blk):
    return lambda: blk.mem.read_u16(blk.q.used + 2)


def test_flush_syncs_before_completion(image, journal):
    events, state = journal
    blk = Blk(image)
    state["used"] = used_idx(blk)
    try:
        blk.request(VIRTIO_BLK_T_OUT, sector=0, out=b"a" * 512)
        assert events == [("pwrite", 0)]  # writeback: no sync on write
        assert blk.request(VIRTIO_BLK_T_FLUSH)[0] == VIRTIO_BLK_S_OK
        # the sync ran while the used idx still said 1: the FLUSH was not yet completed
        assert events == [("pwrite", 0), ("fdatasync", 1)]
        assert used_idx(blk)() == 2
    finally:
        blk.close()


def test_cache_none_syncs_every_write(image, journal):
    events, state = journal
    blk = Blk(image, cache="none")
    state["used"] = used_idx(blk)
    try:
        blk.request(VIRTIO_BLK_T_OUT, sector=0, out=b"a" * 512)
        blk.request(VIRTIO_BLK_T_OUT, sector=1, out=b"b" * 512)
        assert events == [("pwrite", 0), ("fdatasync", 0), ("pwrite", 512), ("fdatasync", 1)]
    finally:
        blk.close()


def test_without_negotiated_flush_writes_are_stable_on_completion(image, journal):
    """§5.2.6.4 case 1: FLUSH offered but not negotiated → writethrough."""
    events, state = journal
    probe = Blk(image)
    offered = probe.drv.device_features()
    probe.close()
    blk = Blk(image, accept=offered & ~(1 << VIRTIO_BLK_F_FLUSH))
    state["used"] = used_idx(blk)
    try:
        blk.request(VIRTIO_BLK_T_OUT, sector=0, out=b"a" * 512)
        assert events == [("pwrite", 0), ("fdatasync", 0)]
    finally:
        blk.close()


def test_cache_unsafe_never_syncs(image, journal):
    events, _ = journal
    blk = Blk(image, cache="unsafe")
    try:
        blk.request(VIRTIO_BLK_T_OUT, sector=0, out=b"a" * 512)
        assert blk.request(VIRTIO_BLK_T_FLUSH)[0] == VIRTIO_BLK_S_OK
        assert events == [("pwrite", 0)]
    finally:
        blk.close()


def test_a_failed_sync_fails_every_later_flush(image, monkeypatch):
    """After fdatasync failed, Linux may have dropped the dirty pages' error and marked them
    clean, so a later fdatasync can succeed although the data never reached the disk
    (the "fsyncgate" of 2018). A FLUSH after a failed one must not report those writes
    stable: every later sync of the image fails (IOERR), with cache=none every write too."""
    real_sync = os.fdatasync
    failures = [OSError(5, "Input/output error")]

    def fdatasync(fd):
        if failures:
            raise failures.pop()
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    blk = Blk(image)
    try:
        assert blk.request(VIRTIO_BLK_T_OUT, sector=0, out=b"a" * 512)[0] == VIRTIO_BLK_S_OK
        assert blk.request(VIRTIO_BLK_T_FLUSH)[0] == VIRTIO_BLK_S_IOERR
        assert failures == []  # the host's fdatasync would now succeed
        assert blk.request(VIRTIO_BLK_T_FLUSH)[0] == VIRTIO_BLK_S_IOERR
        assert blk.request(VIRTIO_BLK_T_OUT, sector=1, out=b"b" * 512)[0] == VIRTIO_BLK_S_OK
        assert blk.request(VIRTIO_BLK_T_FLUSH)[0] == VIRTIO_BLK_S_IOERR
        assert blk.dev.errors["blk_host_io_error"] == 3
        assert blk.request(VIRTIO_BLK_T_IN, sector=0, in_len=512)[1] == b"a" * 512  # reads go on
    finally:
        blk.close()
    failures.append(OSError(5, "Input/output error"))
    blk = Blk(image, cache="none")
    try:
        assert blk.request(VIRTIO_BLK_T_OUT, sector=2, out=b"c" * 512)[0] == VIRTIO_BLK_S_IOERR
        assert blk.request(VIRTIO_BLK_T_OUT, sector=3, out=b"d" * 512)[0] == VIRTIO_BLK_S_IOERR
    finally:
        blk.close()


# -- images --------------------------------------------------------------------------------

def test_sparse_image(tmp_path):
    path = tmp_path / "sparse.img"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, no blocks allocated
    blk = Blk(path)
    try:
        assert blk.drv.config(0, 8) == (1 << 30) // 512
        assert blk.request(VIRTIO_BLK_T_IN, sector=(1 << 21) - 1, in_len=512)[1] == bytes(512)
        blk.request(VIRTIO_BLK_T_OUT, sector=1 << 20, out=b"z" * 512)
    finally:
        blk.close()
    assert os.stat(path).st_blocks * 512 < 1 << 20  # still sparse
    with open(path, "rb") as f:
        f.seek(1 << 29)
        assert f.read(512) == b"z" * 512


def test_image_size_not_whole_sectors(tmp_path):
    path = tmp_path / "odd.img"
    path.write_bytes(b"x" * 1000)
    with pytest.raises(DiskImageError, match="not a multiple of 512"):
        DiskImage(str(path))


def test_missing_image(tmp_path):
    with pytest.raises(DiskImageError, match="cannot open"):
        DiskImage(str(tmp_path / "nope.img"))


def test_lock_excludes_a_second_writer(image):
    first = DiskImage(str(image))
    try:
        with pytest.raises(DiskImageError, match="locked"):
            DiskImage(str(image))
        with pytest.raises(DiskImageError, match="locked"):
            DiskImage(str(image), readonly=True)
    finally:
        first.close()
    DiskImage(str(image)).close()  # released on close


def test_lock_allows_readers_together(image):
    a = DiskImage(str(image), readonly=True)
    b = DiskImage(str(image), readonly=True)
    try:
        with pytest.raises(DiskImageError, match="locked"):
            DiskImage(str(image))
    finally:
        a.close()
        b.close()


def test_lock_across_processes(image):
    """A second process (a second monitor) cannot open the image for writing."""
    import subprocess
    import sys
    held = DiskImage(str(image))
    try:
        code = ("import sys; from x86vm.devices.virtio.blk import DiskImage, DiskImageError\n"
                "try: DiskImage(sys.argv[1])\n"
                "except DiskImageError as e: print(e); sys.exit(3)\n")
        env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
        r = subprocess.run([sys.executable, "-c", code, str(image)], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode == 3 and "locked by another process" in r.stdout
    finally:
        held.close()


def test_request_counts_stay_bounded(blk):
    for rtype in (99, 12345, 0xFFFFFFFF):
        blk.request(rtype)
    blk.request(VIRTIO_BLK_T_GET_ID, in_len=20)
    assert blk.dev.requests == {-1: 3, VIRTIO_BLK_T_GET_ID: 1}


@pytest.mark.parametrize("unmap", [0, 1])
def test_write_zeroes_of_a_large_range_is_cheap_and_exact(tmp_path, unmap):
    path = tmp_path / "big.img"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(b"\xaa" * (4 << 20))
    blk = Blk(path)
    try:
        first, count = (1 << 20) // 512 + 1, (4 << 20) // 512 - 2  # all but one sector each end
        status = blk.request(VIRTIO_BLK_T_WRITE_ZEROES, out=segments((first, count, unmap)))[0]
        assert status == VIRTIO_BLK_S_OK
    finally:
        blk.close()
    data = path.read_bytes()[1 << 20 : 5 << 20]
    assert data[:512] == b"\xaa" * 512 and data[-512:] == b"\xaa" * 512
    assert data[512:-512] == bytes(len(data) - 1024)
