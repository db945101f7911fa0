"""Assembly pieces shared by the bare-metal virtio guests (tests and bench/virtio_blk.py)."""

from __future__ import annotations


def blk_driver_setup(desc: int, avail: int, used: int, queue_size: int = 8) -> str:
    """The driver's initialisation of a modern virtio-mmio block device (virtio 1.2 §3.1.1,
    §4.2.3.2) whose registers are at %fs:(%ebx): reset, ACKNOWLEDGE|DRIVER, features
    VERSION_1 and BLK_F_FLUSH, FEATURES_OK (jumps to `fail` if refused), queue 0 of
    `queue_size` entries at `desc`/`avail`/`used`, QueueReady, DRIVER_OK."""
    return f"""\
    movl $0, %fs:0x070(%ebx)        # Status: reset, ACKNOWLEDGE, DRIVER
    movl $1, %fs:0x070(%ebx)
    movl $3, %fs:0x070(%ebx)
    movl $1, %fs:0x024(%ebx)
    movl $1, %fs:0x020(%ebx)        # VIRTIO_F_VERSION_1
    movl $0, %fs:0x024(%ebx)
    movl $0x200, %fs:0x020(%ebx)    # VIRTIO_BLK_F_FLUSH
    movl $11, %fs:0x070(%ebx)
    testl $8, %fs:0x070(%ebx)
    jz fail
    movl $0, %fs:0x030(%ebx)
    movl ${queue_size}, %fs:0x038(%ebx)
    movl ${desc:#x}, %fs:0x080(%ebx)
    movl $0, %fs:0x084(%ebx)
    movl ${avail:#x}, %fs:0x090(%ebx)
    movl $0, %fs:0x094(%ebx)
    movl ${used:#x}, %fs:0x0a0(%ebx)
    movl $0, %fs:0x0a4(%ebx)
    movl $1, %fs:0x044(%ebx)
    movl $15, %fs:0x070(%ebx)"""
