"""What a virtio device type gives its transport (virtio 1.2 §2, §5).

A device type (block §5.2, entropy §5.4) is a :class:`VirtioDevice`: its device ID, its
feature bits, the maximum size of each of its queues, its configuration space, and
:meth:`VirtioDevice.handle` — one descriptor chain in, the number of bytes it wrote out. The
transport (:mod:`x86vm.devices.virtio.mmio`) owns feature negotiation, the status state
machine, the queues, interrupts and every check on the rings, so a device type never sees a
register, a ring index or an unchecked address.
"""

from __future__ import annotations

from x86vm.devices.virtio.queue import DescriptorChain, ErrorCounters
from x86vm.machine.memory import GuestMemory

# Device-independent feature bits (§6).
VIRTIO_F_INDIRECT_DESC = 28
VIRTIO_F_EVENT_IDX = 29
VIRTIO_F_VERSION_1 = 32

# Device IDs (§5).
VIRTIO_ID_BLOCK = 2
VIRTIO_ID_ENTROPY = 4


class VirtioDevice:
    """Base of the device types; subclasses set the class attributes and :meth:`handle`."""

    device_id: int = 0
    queue_max_sizes: tuple[int, ...] = ()
    name: str = "virtio"

    def __init__(self) -> None:
        self.memory: GuestMemory | None = None
        self.errors: ErrorCounters = ErrorCounters()
        self.driver_features = 0

    @property
    def device_features(self) -> int:
        """Device-type feature bits (0-23 and above 49, §6); the transport adds its own."""
        return 0

    def config_space(self) -> bytes:
        """The device-specific configuration space, little-endian (MMIO offset 0x100+)."""
        return b""

    def write_config(self, offset: int, data: bytes) -> None:
        """A driver write into the configuration space; read-only by default (counted)."""
        self.errors["config_write_read_only"] += 1

    def activate(self, memory: GuestMemory, driver_features: int) -> None:
        """DRIVER_OK was set with these negotiated features."""
        self.memory = memory
        self.driver_features = driver_features

    def reset(self) -> None:
        """The device was reset (Status = 0, §2.4)."""
        self.driver_features = 0

    def handle(self, queue_index: int, chain: DescriptorChain) -> int:
        """Process one chain; return the bytes written into its device-writable part."""
        raise NotImplementedError

    def close(self) -> None:
        """Release host resources (files, locks)."""
