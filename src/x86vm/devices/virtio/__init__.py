"""virtio devices over the virtio-mmio transport (virtio 1.2 §2, §4.2, §5.2, §5.4).

``queue`` (split virtqueues, every check on the rings), ``mmio`` (the transport),
``device`` (what a device type provides), ``blk`` and ``rng`` (device types), ``attach``
(windows, IRQs, ``--drive``, the Linux command line). See docs/virtio.md.
"""
