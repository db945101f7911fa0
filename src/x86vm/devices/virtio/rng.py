"""virtio-rng, the entropy device (virtio 1.2 §5.4), fed from the host's ``os.urandom``.

One queue (requestq); the driver posts device-writable buffers and the device fills them
with random bytes (§5.4.6). Device-readable descriptors carry nothing for this device and are
ignored. A request is filled up to :data:`MAX_REQUEST_BYTES` — the spec lets the device write
fewer bytes than offered (the used length says how many) — so a hostile driver offering
gigabytes costs the host little.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from x86vm.devices.virtio.device import VIRTIO_ID_ENTROPY, VirtioDevice
from x86vm.devices.virtio.queue import DescriptorChain, segment_views

QUEUE_SIZE = 64
MAX_REQUEST_BYTES = 64 * 1024


class VirtioRng(VirtioDevice):
    """An entropy device (ID 4): no features, no configuration space."""

    device_id = VIRTIO_ID_ENTROPY
    queue_max_sizes = (QUEUE_SIZE,)
    name = "virtio-rng"

    def __init__(self, source: Callable[[int], bytes] = os.urandom) -> None:
        super().__init__()
        self.source = source
        self.bytes_supplied = 0

    def handle(self, queue_index: int, chain: DescriptorChain) -> int:
        assert self.memory is not None
        want = min(chain.writable_len, MAX_REQUEST_BYTES)
        data = self.source(want)
        done = 0
        for view in segment_views(self.memory, chain.writable, 0, want):
            view[:] = data[done : done + len(view)]
            done += len(view)
        self.bytes_supplied += done
        return done
