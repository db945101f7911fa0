"""The virtio-mmio transport and split virtqueues (virtio 1.2 §4.2, §2.7), driven through the
MMIO bus by the Python driver in virtio_driver.py, with the entropy device behind it."""

from __future__ import annotations

import struct

import pytest

from virtio_driver import WINDOW, Driver, new_memory
from x86vm.devices.virtio import mmio as R
from x86vm.devices.virtio.device import (
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
)
from x86vm.devices.virtio.mmio import VirtioMmio
from x86vm.devices.virtio.queue import (
    QUEUE_CHECKS,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
)
from x86vm.devices.virtio.rng import QUEUE_SIZE, VirtioRng
from x86vm.machine.irq import NullIrqLine


def counting_source(n: int) -> bytes:
    return bytes(i & 0xFF for i in range(n))


@pytest.fixture
def setup():
    mem = new_memory()
    irq = NullIrqLine()
    dev = VirtioMmio(VirtioRng(counting_source), mem, irq)
    mem.add_mmio(WINDOW, R.WINDOW_SIZE, dev, "virtio-rng")
    yield mem, irq, dev, Driver(mem)
    mem.close()


def test_identification_registers(setup):
    _, _, _, drv = setup
    assert drv.read(R.MAGIC) == 0x74726976  # §4.2.2: "virt"
    assert drv.read(R.VERSION_REG) == 2
    assert drv.read(R.DEVICE_ID) == 4  # §5.4.1 entropy device
    features = drv.device_features()
    assert features >> VIRTIO_F_VERSION_1 & 1
    assert features >> VIRTIO_F_INDIRECT_DESC & 1 and features >> VIRTIO_F_EVENT_IDX & 1
    drv.write(R.QUEUE_SEL, 0)
    assert drv.read(R.QUEUE_SIZE_MAX) == QUEUE_SIZE
    drv.write(R.QUEUE_SEL, 1)
    assert drv.read(R.QUEUE_SIZE_MAX) == 0  # no such queue
    drv.write(R.SHM_SEL, 0)  # no shared memory: length and base are -1
    assert drv.read(R.SHM_LEN_LOW) == drv.read(R.SHM_LEN_HIGH) == 0xFFFFFFFF
    assert drv.read(R.SHM_BASE_LOW) == drv.read(R.SHM_BASE_HIGH) == 0xFFFFFFFF
    assert drv.read(R.CONFIG_GENERATION) == 0


def test_one_request_end_to_end(setup):
    mem, irq, dev, drv = setup
    q = drv.start()
    buf = drv.heap.alloc(64)
    head = q.add([(buf, 64, True)])
    assert not irq.level
    q.kick()
    assert q.take_used() == [(head, 64)]
    assert mem.read(buf, 64) == counting_source(64)
    assert irq.level and drv.read(R.INTERRUPT_STATUS) == R.INT_USED_BUFFER
    drv.ack_interrupt()
    assert not irq.level and drv.read(R.INTERRUPT_STATUS) == 0
    assert dict(dev.errors) == {}


def test_features_ok_needs_version_1_and_offered_bits(setup):
    _, _, dev, drv = setup
    offered = drv.device_features()
    assert not drv.negotiate(offered & ~(1 << VIRTIO_F_VERSION_1)) & R.FEATURES_OK
    assert dev.errors["features_without_version_1"] == 1
    assert not drv.negotiate(offered | 1 << 40) & R.FEATURES_OK
    assert dev.errors["features_not_offered"] == 1
    assert drv.negotiate(1 << VIRTIO_F_VERSION_1) & R.FEATURES_OK


def test_status_state_machine(setup):
    _, _, dev, drv = setup
    drv.write(R.STATUS, R.DRIVER)  # DRIVER before ACKNOWLEDGE
    assert drv.read(R.STATUS) == 0 and dev.errors["status_out_of_order"] == 1
    drv.write(R.STATUS, R.ACKNOWLEDGE | R.DRIVER | R.DRIVER_OK)  # DRIVER_OK before FEATURES_OK
    assert drv.read(R.STATUS) == R.ACKNOWLEDGE | R.DRIVER
    drv.write(R.STATUS, R.ACKNOWLEDGE)  # clearing DRIVER without a reset
    assert drv.read(R.STATUS) == R.ACKNOWLEDGE | R.DRIVER
    assert dev.errors["status_bit_cleared"] == 1
    drv.write(R.STATUS, R.ACKNOWLEDGE | R.DRIVER | R.FAILED)
    assert drv.read(R.STATUS) & R.FAILED
    drv.write(R.STATUS, 0)
    assert drv.read(R.STATUS) == 0


def test_reset_clears_queues_features_and_interrupts(setup):
    _, irq, dev, drv = setup
    q = drv.start()
    q.add([(drv.heap.alloc(8), 8, True)])
    q.kick()
    assert irq.level
    drv.write(R.STATUS, 0)
    assert not irq.level and drv.read(R.INTERRUPT_STATUS) == 0
    drv.write(R.QUEUE_SEL, 0)
    assert drv.read(R.QUEUE_READY) == 0 and dev.queues[0].size == QUEUE_SIZE
    assert dev.driver_features == 0 and drv.read(R.STATUS) == 0
    # and the device works again after a fresh initialization
    q = drv.start()
    head = q.add([(drv.heap.alloc(8), 8, True)])
    q.kick()
    assert q.take_used() == [(head, 8)]


def test_queue_config_refused_while_ready(setup):
    _, _, dev, drv = setup
    drv.start()
    drv.write(R.QUEUE_SIZE, 4)
    assert dev.queues[0].size == QUEUE_SIZE and dev.errors["queue_config_while_ready"] == 1


def test_driver_features_frozen_after_features_ok(setup):
    _, _, dev, drv = setup
    drv.negotiate()
    drv.write(R.DRIVER_FEATURES_SEL, 0)
    drv.write(R.DRIVER_FEATURES, 0)
    assert dev.errors["features_after_features_ok"] == 1
    assert dev.driver_features == drv.features


def test_register_widths_and_unknown_offsets(setup):
    _, _, dev, drv = setup
    assert drv.read(R.MAGIC, 2) == 0
    drv.write(R.STATUS, 1, size=1)
    assert drv.read(R.STATUS) == 0
    assert dev.errors["register_access_width"] == 2
    assert drv.read(0x0F0) == 0 and dev.errors["register_unknown"] == 1
    drv.write(R.MAGIC, 5)
    assert dev.errors["register_read_only"] == 1
    assert drv.read(R.CONFIG_OFFSET, 1) == 0 and dev.errors["config_out_of_range"] == 1


@pytest.mark.parametrize("indirect", [False, True])
def test_chain_of_several_buffers(setup, indirect):
    mem, _, _, drv = setup
    q = drv.start()
    bufs = [drv.heap.alloc(n) for n in (3, 5, 100)]
    head = q.add([(b, n, True) for b, n in zip(bufs, (3, 5, 100), strict=True)],
                 indirect=indirect)
    q.kick()
    assert q.take_used() == [(head, 108)]
    data = counting_source(108)
    assert mem.read(bufs[0], 3) + mem.read(bufs[1], 5) + mem.read(bufs[2], 100) == data


def test_indirect_refused_unless_negotiated(setup):
    _, _, dev, drv = setup
    q = drv.start(indirect=False)
    q.add([(drv.heap.alloc(8), 8, True)], indirect=True)
    q.kick()
    assert dev.errors["indirect_not_negotiated"] == 1
    assert drv.read(R.STATUS) & R.DEVICE_NEEDS_RESET
    # §2.1.2: NEEDS_RESET after DRIVER_OK sends a configuration change notification
    assert drv.read(R.INTERRUPT_STATUS) & R.INT_CONFIG_CHANGE


def test_no_interrupt_flag_suppresses(setup):
    _, irq, _, drv = setup
    q = drv.start(event_idx=False)
    q.suppress_interrupts(True)
    q.add([(drv.heap.alloc(8), 8, True)])
    q.kick()
    assert len(q.take_used()) == 1 and not irq.level
    q.suppress_interrupts(False)
    q.add([(drv.heap.alloc(8), 8, True)])
    q.kick()
    assert irq.level


def test_event_idx_used_event_and_avail_event(setup):
    _, irq, dev, drv = setup
    q = drv.start(event_idx=True)
    assert dev.queues[0].event_idx
    q.set_used_event(2)  # interrupt me only once used idx passes 2 (i.e. reaches 3)
    for expected_level in (False, False, True):
        q.add([(drv.heap.alloc(8), 8, True)])
        q.kick()
        assert irq.level == expected_level
        assert q.avail_event() == q.avail_idx  # device: "kick me for the next one"
    drv.ack_interrupt()
    # the flags field is ignored once EVENT_IDX is negotiated (§2.7.10)
    q.suppress_interrupts(True)
    q.set_used_event(3)
    q.add([(drv.heap.alloc(8), 8, True)])
    q.kick()
    assert irq.level


def test_event_idx_batch_crossing(setup):
    """Two buffers used in one kick: used idx moves 0→2 across used_event=0 → notify."""
    _, irq, _, drv = setup
    q = drv.start()
    q.set_used_event(0)
    q.add([(drv.heap.alloc(8), 8, True)])
    q.add([(drv.heap.alloc(8), 8, True)])
    q.kick()
    assert irq.level and len(q.take_used()) == 2


def test_used_ring_wraps_past_65535(setup):
    _, _, dev, drv = setup
    q = drv.start(queue_size=4)
    buf = drv.heap.alloc(4)
    for _ in range(70000 // 4 * 4 // 4):
        for _ in range(4):
            q.add([(buf, 4, True)])
        q.kick()
        assert len(q.take_used()) == 4
    assert dev.queues[0].used_idx == (70000 // 4 * 4 // 4 * 4) & 0xFFFF
    assert dict(dev.errors) == {}


# -- every check on rings and descriptors --------------------------------------------------

def bad_chain(q, descriptors, head=0):
    """Write raw descriptors (addr, len, flags, next) at 0.. and make ``head`` available."""
    for i, (addr, length, flags, nxt) in enumerate(descriptors):
        q.write_desc(q.desc, i, addr, length, flags, nxt)
    q.publish(head)
    q.kick()


W, N, IND = VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_INDIRECT


@pytest.mark.parametrize("check,make", [
    ("desc_loop", lambda q, b: bad_chain(q, [(b, 8, W | N, 1), (b, 8, W | N, 0)])),
    ("desc_index_out_of_range", lambda q, b: bad_chain(q, [(b, 8, W | N, 999)])),
    ("head_out_of_range", lambda q, b: bad_chain(q, [], head=QUEUE_SIZE)),
    ("desc_not_ram", lambda q, b: bad_chain(q, [(0x7000_0000, 8, W, 0)])),
    ("desc_not_ram", lambda q, b: bad_chain(q, [(q.mem.ram_size - 4, 8, W, 0)])),
    ("desc_mmio", lambda q, b: bad_chain(q, [(WINDOW, 8, W, 0)])),
    ("readable_after_writable", lambda q, b: bad_chain(q, [(b, 8, W | N, 1), (b, 8, 0, 0)])),
    ("indirect_with_next", lambda q, b: bad_chain(q, [(b, 16, IND | N, 1), (b, 8, W, 0)])),
    ("indirect_bad_length", lambda q, b: bad_chain(q, [(b, 24, IND, 0)])),
    ("indirect_bad_length", lambda q, b: bad_chain(q, [(b, 0, IND, 0)])),
    ("indirect_not_ram", lambda q, b: bad_chain(q, [(0x7FFF_0000, 32, IND, 0)])),
    ("chain_too_big", lambda q, b: bad_chain(q, [(b, 8, N, 1), (b, 0xFFFF_FFFF, 0, 0)])),
])
def test_descriptor_checks(setup, check, make):
    _, _, dev, drv = setup
    q = drv.start()
    make(q, drv.heap.alloc(64))
    assert dev.errors[check] == 1, dict(dev.errors)
    assert drv.read(R.STATUS) & R.DEVICE_NEEDS_RESET
    q.add([(drv.heap.alloc(8), 8, True)])
    q.kick()  # a broken device ignores kicks until reset
    assert dev.errors["notify_needs_reset"] == 1


def test_nested_indirect(setup):
    mem, _, dev, drv = setup
    q = drv.start()
    inner = drv.heap.alloc(16)
    q.write_desc(inner, 0, drv.heap.alloc(8), 8, W, 0)
    outer = drv.heap.alloc(16)
    q.write_desc(outer, 0, inner, 16, IND, 0)
    bad_chain(q, [(outer, 16, IND, 0)])
    assert dev.errors["indirect_nested"] == 1


def test_chain_longer_than_queue(setup):
    _, _, dev, drv = setup
    q = drv.start(queue_size=4)
    table = drv.heap.alloc(16 * 5)
    buf = drv.heap.alloc(8)
    for i in range(5):  # an indirect table of 5 > QueueSize 4
        q.write_desc(table, i, buf, 8, W | (N if i < 4 else 0), i + 1)
    bad_chain(q, [(table, 16 * 5, IND, 0)])
    assert dev.errors["chain_too_long"] == 1


def test_full_size_indirect_table_is_allowed(setup):
    """QueueSize entries in an indirect table, behind the one descriptor pointing at it (as
    Linux builds a request of seg_max = QueueSize - 2 segments)."""
    _, _, dev, drv = setup
    q = drv.start(queue_size=4)
    bufs = [(drv.heap.alloc(8), 8, True) for _ in range(4)]
    head = q.add(bufs, indirect=True)
    q.kick()
    assert q.take_used() == [(head, 32)] and dict(dev.errors) == {}


def test_avail_idx_jump(setup):
    mem, _, dev, drv = setup
    q = drv.start(queue_size=8)
    mem.write_u16(q.avail + 2, 9)
    q.kick()
    assert dev.errors["avail_idx_jump"] == 1


@pytest.mark.parametrize("check,size,desc", [
    ("queue_size_zero", 0, 0x1000),
    ("queue_size_not_power_of_2", 12, 0x1000),
    ("queue_size_above_max", QUEUE_SIZE * 2, 0x1000),
    ("ring_misaligned", 8, 0x1008),
    ("ring_not_ram", 8, 0x7000_0000),
    ("ring_not_ram", 8, WINDOW),
])
def test_queue_layout_checks(setup, check, size, desc):
    _, _, dev, drv = setup
    assert drv.negotiate() & R.FEATURES_OK
    drv.write(R.QUEUE_SEL, 0)
    drv.write(R.QUEUE_SIZE, size)
    drv.write(R.QUEUE_DESC_LOW, desc)
    drv.write(R.QUEUE_DRIVER_LOW, 0x2000)
    drv.write(R.QUEUE_DEVICE_LOW, 0x3000)
    drv.write(R.QUEUE_READY, 1)
    assert dev.errors[check] == 1
    assert drv.read(R.QUEUE_READY) == 0 and drv.read(R.STATUS) & R.DEVICE_NEEDS_RESET


def test_notify_checks(setup):
    _, _, dev, drv = setup
    drv.write(R.QUEUE_NOTIFY, 0)
    assert dev.errors["notify_before_driver_ok"] == 1
    status = drv.negotiate()
    drv.write(R.STATUS, status | R.DRIVER_OK)  # no queue set up
    drv.write(R.QUEUE_NOTIFY, 0)
    assert dev.errors["notify_unready_queue"] == 1
    drv.write(R.QUEUE_NOTIFY, 7)
    assert dev.errors["notify_bad_queue"] == 1
    assert not drv.read(R.STATUS) & R.DEVICE_NEEDS_RESET


def test_every_queue_check_is_named():
    from x86vm.devices.virtio.queue import VirtqueueError
    for name in QUEUE_CHECKS:
        assert VirtqueueError(name).check == name
    with pytest.raises(AssertionError):
        VirtqueueError("no_such_check")


def test_zero_length_descriptors_are_skipped(setup):
    mem, _, dev, drv = setup
    q = drv.start()
    buf = drv.heap.alloc(8)
    bad_chain(q, [(0xFFFF_FFFF_FFFF_0000, 0, N, 1), (buf, 8, W, 0)])
    assert q.take_used() == [(0, 8)] and dict(dev.errors) == {}


def test_descriptor_layout_matches_spec():
    # §2.7.5: struct virtq_desc is le64 addr, le32 len, le16 flags, le16 next
    assert struct.calcsize("<QIHH") == 16


def test_rings_overlapping_each_other_cannot_loop_the_device(setup):
    """The used ring placed over the available ring: every used element the device writes
    lands in the available ring. Processing is bounded by QueueSize per kick."""
    mem, _, dev, drv = setup
    assert drv.negotiate() & R.FEATURES_OK
    q_desc, ring = drv.heap.alloc(16 * 4), drv.heap.alloc(64, 4)
    buf = drv.heap.alloc(8)
    for i in range(4):
        mem.write(q_desc + 16 * i, struct.pack("<QIHH", buf, 8, VIRTQ_DESC_F_WRITE, 0))
    drv.write(R.QUEUE_SEL, 0)
    drv.write(R.QUEUE_SIZE, 4)
    drv.write(R.QUEUE_DESC_LOW, q_desc)
    drv.write(R.QUEUE_DRIVER_LOW, ring)
    drv.write(R.QUEUE_DEVICE_LOW, ring)  # the same area
    drv.write(R.QUEUE_READY, 1)
    drv.write(R.STATUS, drv.read(R.STATUS) | R.DRIVER_OK)
    mem.write_u16(ring + 2, 4)  # four heads (0) available
    drv.write(R.QUEUE_NOTIFY, 0)
    assert dev.notifications == 1 and dev.queues[0].used_idx <= 4
