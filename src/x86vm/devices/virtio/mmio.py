"""The virtio-mmio transport, version 2 (virtio 1.2 §4.2; modern devices only).

Register layout (§4.2.2, offsets from the window's base; control registers are 32-bit,
accessed 32 bits wide and aligned — anything else is counted and ignored)::

    0x000 MagicValue      R  0x74726976 "virt"      0x060 InterruptStatus  R
    0x004 Version         R  2                      0x064 InterruptACK     W
    0x008 DeviceID        R                         0x070 Status           RW (0 resets)
    0x00c VendorID        R                         0x080/084 QueueDescLow/High     W
    0x010 DeviceFeatures  R                         0x090/094 QueueDriverLow/High   W
    0x014 DeviceFeaturesSel W                       0x0a0/0a4 QueueDeviceLow/High   W
    0x020 DriverFeatures  W                         0x0ac SHMSel           W
    0x024 DriverFeaturesSel W                       0x0b0/0b4 SHMLenLow/High   R (-1: none)
    0x030 QueueSel        W                         0x0b8/0bc SHMBaseLow/High  R (-1: none)
    0x034 QueueSizeMax    R                         0x0c0 QueueReset       RW (0: not offered)
    0x038 QueueSize       W                         0x0fc ConfigGeneration R
    0x044 QueueReady      RW                        0x100+ device configuration space
    0x050 QueueNotify     W

The kick: a write to QueueNotify is an MMIO exit (``MmioExit`` → run loop → ``MmioBus`` →
:meth:`VirtioMmio.write`), and the device processes that queue synchronously inside the
write (:meth:`VirtioMmio.notify`); the used-buffer interrupt is raised before the write
returns, so the guest resumes with the interrupt already pending. The interrupt is
level-triggered: the line is asserted while InterruptStatus is not 0.

Driver errors are counted in :attr:`VirtioMmio.errors` by check name (the transport's
:data:`TRANSPORT_CHECKS` and the queue's ``QUEUE_CHECKS``); a broken queue sets
DEVICE_NEEDS_RESET and, after DRIVER_OK, a configuration-change interrupt (§2.1.2).
"""

from __future__ import annotations

import logging

from x86vm.devices.virtio.device import (
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
    VirtioDevice,
)
from x86vm.devices.virtio.queue import Virtqueue, VirtqueueError
from x86vm.machine.irq import IrqLine
from x86vm.machine.memory import GuestMemory, GuestMemoryError

log = logging.getLogger(__name__)

MAGIC_VALUE = 0x74726976
VERSION = 2
VENDOR_ID = int.from_bytes(b"x86v", "little")
WINDOW_SIZE = 0x200
CONFIG_OFFSET = 0x100

# Device status bits (§2.1).
ACKNOWLEDGE = 1
DRIVER = 2
DRIVER_OK = 4
FEATURES_OK = 8
DEVICE_NEEDS_RESET = 64
FAILED = 128

# InterruptStatus bits (§4.2.2).
INT_USED_BUFFER = 1
INT_CONFIG_CHANGE = 2

TRANSPORT_FEATURES = (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_F_INDIRECT_DESC) | (
    1 << VIRTIO_F_EVENT_IDX)

# Register offsets (§4.2.2, Table "MMIO Device Register Layout").
MAGIC, VERSION_REG, DEVICE_ID, VENDOR = 0x000, 0x004, 0x008, 0x00C
DEVICE_FEATURES, DEVICE_FEATURES_SEL = 0x010, 0x014
DRIVER_FEATURES, DRIVER_FEATURES_SEL = 0x020, 0x024
QUEUE_SEL, QUEUE_SIZE_MAX, QUEUE_SIZE, QUEUE_READY, QUEUE_NOTIFY = 0x030, 0x034, 0x038, 0x044, 0x050
INTERRUPT_STATUS, INTERRUPT_ACK, STATUS = 0x060, 0x064, 0x070
QUEUE_DESC_LOW, QUEUE_DESC_HIGH = 0x080, 0x084
QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH = 0x090, 0x094
QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH = 0x0A0, 0x0A4
SHM_SEL, SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH = 0x0AC, 0x0B0, 0x0B4, 0x0B8, 0x0BC
QUEUE_RESET, CONFIG_GENERATION = 0x0C0, 0x0FC

_QUEUE_ADDRESS = {  # register -> (Virtqueue attribute, shift)
    QUEUE_DESC_LOW: ("desc_addr", 0), QUEUE_DESC_HIGH: ("desc_addr", 32),
    QUEUE_DRIVER_LOW: ("driver_addr", 0), QUEUE_DRIVER_HIGH: ("driver_addr", 32),
    QUEUE_DEVICE_LOW: ("device_addr", 0), QUEUE_DEVICE_HIGH: ("device_addr", 32),
}

TRANSPORT_CHECKS: dict[str, str] = {
    "register_access_width": "a control register accessed other than 32 bits wide and aligned",
    "register_unknown": "an access to an offset the register table does not name",
    "register_read_only": "a write to a read-only register",
    "status_bit_cleared": "a Status write that clears a bit without resetting (§2.1.2)",
    "status_out_of_order": "a Status bit set before the ones §3.1.1 puts before it",
    "features_not_offered": "FEATURES_OK with a feature the device did not offer (§2.2.1)",
    "features_without_version_1": "FEATURES_OK without VIRTIO_F_VERSION_1 (§6.1)",
    "features_after_features_ok": "DriverFeatures written after FEATURES_OK",
    "queue_sel_out_of_range": "a queue register used with QueueSel naming no queue",
    "queue_config_while_ready": "QueueSize or a ring address written while QueueReady is 1",
    "notify_before_driver_ok": "QueueNotify before DRIVER_OK (§3.1.1)",
    "notify_bad_queue": "QueueNotify naming no queue",
    "notify_unready_queue": "QueueNotify for a queue whose QueueReady is 0 (§4.2.2.1)",
    "notify_needs_reset": "QueueNotify while DEVICE_NEEDS_RESET is set",
    "config_out_of_range": "a configuration-space access beyond the device's layout",
    "config_write_read_only": "a write to a read-only configuration field",
}


class VirtioMmio:
    """One virtio-mmio window (0x200 bytes) in front of one :class:`VirtioDevice`."""

    span = WINDOW_SIZE

    def __init__(self, device: VirtioDevice, memory: GuestMemory, irq: IrqLine) -> None:
        self.device = device
        self.memory = memory
        self.irq = irq
        self.errors = device.errors  # one counter per device: transport, queue and device checks
        self.queues = [Virtqueue(memory, i, n) for i, n in enumerate(device.queue_max_sizes)]
        self.config_generation = 0
        self.notifications = 0
        self.interrupts = 0
        self._reset_registers()

    def _reset_registers(self) -> None:
        self.status = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.queue_sel = 0
        self.shm_sel = 0
        self.interrupt_status = 0
        for q in self.queues:
            q.reset()
        self.irq.set_level(False)

    @property
    def offered_features(self) -> int:
        return self.device.device_features | TRANSPORT_FEATURES

    def reset(self) -> None:
        """Status = 0 (§2.4.1): queues, features and interrupts back to their initial state."""
        self._reset_registers()
        self.device.reset()

    # -- the bus interface ------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset >= CONFIG_OFFSET:
            return self._read_config(offset - CONFIG_OFFSET, size)
        if size != 4 or offset % 4:
            self.errors["register_access_width"] += 1
            return 0
        value = self._read_register(offset)
        if value is None:
            self.errors["register_unknown"] += 1
            return 0
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= CONFIG_OFFSET:
            self._write_config(offset - CONFIG_OFFSET, size, value)
            return
        if size != 4 or offset % 4:
            self.errors["register_access_width"] += 1
            return
        self._write_register(offset, value & 0xFFFFFFFF)

    # -- registers --------------------------------------------------------------------------

    def _selected_queue(self) -> Virtqueue | None:
        if self.queue_sel < len(self.queues):
            return self.queues[self.queue_sel]
        return None

    def _read_register(self, offset: int) -> int | None:
        q = self._selected_queue()
        if offset == MAGIC:
            return MAGIC_VALUE
        if offset == VERSION_REG:
            return VERSION
        if offset == DEVICE_ID:
            return self.device.device_id
        if offset == VENDOR:
            return VENDOR_ID
        if offset == DEVICE_FEATURES:
            if self.device_features_sel > 1:
                return 0
            return (self.offered_features >> (32 * self.device_features_sel)) & 0xFFFFFFFF
        if offset == QUEUE_SIZE_MAX:
            return q.max_size if q is not None else 0
        if offset == QUEUE_READY:
            return int(q.ready) if q is not None else 0
        if offset == INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == STATUS:
            return self.status
        if offset in (SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH):
            return 0xFFFFFFFF  # no shared memory regions: length and base read as -1
        if offset == QUEUE_RESET:
            return 0
        if offset == CONFIG_GENERATION:
            return self.config_generation
        if offset in _WRITE_ONLY:
            return 0  # §4.2.2.2: the driver must not read it; reads return 0
        return None

    def _write_register(self, offset: int, value: int) -> None:
        if offset == DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == DRIVER_FEATURES:
            self._write_driver_features(value)
        elif offset == QUEUE_SEL:
            self.queue_sel = value
        elif offset == QUEUE_SIZE or offset in _QUEUE_ADDRESS or offset == QUEUE_READY:
            self._write_queue_register(offset, value)
        elif offset == QUEUE_NOTIFY:
            self.notify(value)
        elif offset == INTERRUPT_ACK:
            self.interrupt_status &= ~value
            self._update_irq()
        elif offset == STATUS:
            self._write_status(value & 0xFF)
        elif offset == SHM_SEL:
            self.shm_sel = value
        elif offset == QUEUE_RESET:
            pass  # VIRTIO_F_RING_RESET is not offered
        elif offset in _READ_ONLY:
            self.errors["register_read_only"] += 1
        else:
            self.errors["register_unknown"] += 1

    def _write_driver_features(self, value: int) -> None:
        if self.status & FEATURES_OK:
            self.errors["features_after_features_ok"] += 1
            return
        if self.driver_features_sel > 1:
            return
        shift = 32 * self.driver_features_sel
        self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)) | (value << shift)

    def _write_queue_register(self, offset: int, value: int) -> None:
        q = self._selected_queue()
        if q is None:
            self.errors["queue_sel_out_of_range"] += 1
            return
        if offset == QUEUE_READY:
            if not value & 1:
                q.ready = False
            elif not q.ready:
                try:
                    q.enable(indirect=bool(self.driver_features >> VIRTIO_F_INDIRECT_DESC & 1),
                             event_idx=bool(self.driver_features >> VIRTIO_F_EVENT_IDX & 1))
                except VirtqueueError as exc:
                    self._queue_failed(exc)
            return
        if q.ready:
            self.errors["queue_config_while_ready"] += 1
            return
        if offset == QUEUE_SIZE:
            q.size = value
        else:
            attr, shift = _QUEUE_ADDRESS[offset]
            old = getattr(q, attr)
            setattr(q, attr, (old & ~(0xFFFFFFFF << shift)) | (value << shift))

    def _write_status(self, value: int) -> None:
        """The status state machine (§2.1, §3.1.1): 0 resets; bits are only ever added, in
        order ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; FEATURES_OK is refused (left
        clear, for the driver to read back) unless the features are acceptable."""
        if value == 0:
            self.reset()
            return
        device_bits = self.status & DEVICE_NEEDS_RESET
        old = self.status & ~DEVICE_NEEDS_RESET
        value &= ~DEVICE_NEEDS_RESET
        if old & ~value:
            self.errors["status_bit_cleared"] += 1
            return
        new = value & ~old
        if new & FAILED:
            old |= FAILED
        if new & ACKNOWLEDGE:
            old |= ACKNOWLEDGE
        if new & DRIVER:
            old = self._add_status(old, DRIVER, ACKNOWLEDGE)
        if new & FEATURES_OK and self._add_status(old, FEATURES_OK, ACKNOWLEDGE | DRIVER) != old:
            if self._features_acceptable():
                old |= FEATURES_OK
        if new & DRIVER_OK:
            before = old
            old = self._add_status(old, DRIVER_OK, ACKNOWLEDGE | DRIVER | FEATURES_OK)
            if old != before:
                self.device.activate(self.memory, self.driver_features)
        self.status = old | device_bits

    def _add_status(self, status: int, bit: int, needed: int) -> int:
        if status & needed != needed:
            self.errors["status_out_of_order"] += 1
            return status
        return status | bit

    def _features_acceptable(self) -> bool:
        if self.driver_features & ~self.offered_features:
            self.errors["features_not_offered"] += 1
            return False
        if not self.driver_features >> VIRTIO_F_VERSION_1 & 1:
            self.errors["features_without_version_1"] += 1
            return False
        return True

    # -- the kick ---------------------------------------------------------------------------

    def notify(self, queue_index: int) -> None:
        """QueueNotify: process every available chain of the queue, then interrupt if the
        driver wants it (§2.7.7.2, §2.7.10)."""
        self.notifications += 1
        if not self.status & DRIVER_OK:
            self.errors["notify_before_driver_ok"] += 1
            return
        if self.status & DEVICE_NEEDS_RESET:
            self.errors["notify_needs_reset"] += 1
            return
        if queue_index >= len(self.queues):
            self.errors["notify_bad_queue"] += 1
            return
        q = self.queues[queue_index]
        if not q.ready:
            self.errors["notify_unready_queue"] += 1
            return
        try:
            # At most QueueSize chains: the vCPU is stopped, so no more can be made available
            # meanwhile, unless rings overlapping each other feed the device its own writes —
            # the bound keeps even that from looping.
            for _ in range(q.size):
                chain = q.pop()
                if chain is None:
                    break
                written = self.device.handle(queue_index, chain)
                q.push(chain.head, written)
            if q.should_notify():
                self._interrupt(INT_USED_BUFFER)
        except VirtqueueError as exc:
            self._queue_failed(exc)
        except GuestMemoryError as exc:  # a device's copy found a hole: the driver's fault
            self._queue_failed(VirtqueueError("ring_access", str(exc)))

    def _queue_failed(self, exc: VirtqueueError) -> None:
        self.errors[exc.check] += 1
        log.debug("virtio %s: %s", self.device.name, exc)
        self.status |= DEVICE_NEEDS_RESET
        if self.status & DRIVER_OK:
            self._interrupt(INT_CONFIG_CHANGE)  # §2.1.2: NEEDS_RESET after DRIVER_OK

    def config_changed(self) -> None:
        """The device changed its configuration space (§2.5.1): new generation, interrupt."""
        self.config_generation = (self.config_generation + 1) & 0xFFFFFFFF
        if self.status & DRIVER_OK:
            self._interrupt(INT_CONFIG_CHANGE)

    def _interrupt(self, bits: int) -> None:
        self.interrupt_status |= bits
        self.interrupts += 1
        self._update_irq()

    def _update_irq(self) -> None:
        self.irq.set_level(self.interrupt_status != 0)

    # -- configuration space ----------------------------------------------------------------

    def _read_config(self, offset: int, size: int) -> int:
        config = self.device.config_space()
        if size not in (1, 2, 4, 8) or offset + size > len(config):
            self.errors["config_out_of_range"] += 1
            return 0
        return int.from_bytes(config[offset : offset + size], "little")

    def _write_config(self, offset: int, size: int, value: int) -> None:
        if size not in (1, 2, 4, 8) or offset + size > len(self.device.config_space()):
            self.errors["config_out_of_range"] += 1
            return
        self.device.write_config(offset, value.to_bytes(size, "little"))

    def close(self) -> None:
        self.device.close()


_WRITE_ONLY = frozenset({DEVICE_FEATURES_SEL, DRIVER_FEATURES, DRIVER_FEATURES_SEL, QUEUE_SEL,
                         QUEUE_SIZE, QUEUE_NOTIFY, INTERRUPT_ACK, SHM_SEL, *_QUEUE_ADDRESS})
_READ_ONLY = frozenset({MAGIC, VERSION_REG, DEVICE_ID, VENDOR, DEVICE_FEATURES, QUEUE_SIZE_MAX,
                        INTERRUPT_STATUS, SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW,
                        SHM_BASE_HIGH, CONFIG_GENERATION})
