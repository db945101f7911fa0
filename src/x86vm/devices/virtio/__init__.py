"""virtio devices over the virtio-mmio transport (virtio 1.2 §2, §4.2, §5.2, §5.4).

``queue`` (split virtqueues, every check on the rings), ``mmio`` (the transport),
``device`` (what a device type provides), ``blk`` and ``rng`` (device types), ``attach``
(windows, IRQs, ``--drive``, the Linux command line). See docs/virtio.md.
"""

from x86vm.devices.virtio.attach import (
    AttachedVirtio,
    DriveSpecError,
    attach_virtio,
    cmdline_fragment,
    parse_drive,
)
from x86vm.devices.virtio.blk import DiskImageError, DriveSpec, VirtioBlock
from x86vm.devices.virtio.mmio import VirtioMmio
from x86vm.devices.virtio.rng import VirtioRng

__all__ = ["AttachedVirtio", "DiskImageError", "DriveSpec", "DriveSpecError", "VirtioBlock",
           "VirtioMmio", "VirtioRng", "attach_virtio", "cmdline_fragment", "parse_drive"]
