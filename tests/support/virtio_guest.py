"""Assembly pieces shared by the bare-metal guests: the virtio tests, bench/virtio_blk.py and
the device probes of tests/dev_platform.py."""

from __future__ import annotations

from collections.abc import Sequence


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


def find_blk_window(windows: Sequence[int]) -> str:
    """Code that probes the virtio-mmio windows at `windows` (virtio 1.2 §4.2.2: MagicValue
    "virt" at 0x000, DeviceID 2 at 0x008) through the 4 GiB %fs of unreal_mode() and goes to
    label `found` with the block device's base in %ebx, or exits through debug-exit (port
    0xf4) with 0x7f when there is none. The table: window_table(windows). Clobbers %si."""
    return f"""\
    xor %si, %si                    # find the virtio-blk window
3:  movl %cs:windows(%si), %ebx
    cmpl $0x74726976, %fs:(%ebx)
    jne 4f
    cmpl $2, %fs:8(%ebx)
    je found
4:  add $4, %si
    cmp ${4 * len(windows)}, %si
    jb 3b
    mov $0x7f, %al
    out %al, $0xf4"""


def window_table(windows: Sequence[int]) -> str:
    """The `windows` table find_blk_window() reads (in the code segment)."""
    return "windows:\n" + "\n".join(f"    .long {a:#x}" for a in windows)


def unreal_mode(*segments: str) -> str:
    """Real mode with `segments` (e.g. "fs") reaching all 4 GiB: load them from the flat data
    descriptor 0x08 of `gdtr` in protected mode and return to real mode, where their hidden
    base and limit stay (SDM Vol. 3A §9.9.2). Ends at label 2, in real mode."""
    loads = "".join(f"    mov %dx, %{s}\n" for s in segments)
    return f"""\
    lgdtl %cs:gdtr
    mov %cr0, %eax
    or $1, %al
    mov %eax, %cr0
    jmp 1f
1:  mov $0x08, %dx
{loads}    and $0xfe, %al
    mov %eax, %cr0
    jmp 2f"""


def flat_gdt(link_base: int = 0, accessed: bool = False) -> str:
    """The `gdt`/`gdtr` pair unreal_mode() loads: a null descriptor and, at selector 0x08, a
    flat 4 GiB read/write data segment (SDM Vol. 3A §3.4.5). `link_base` is added to the
    table's address in `gdtr` (0xf0000 for a ROM linked at 0). `accessed` sets the type's A
    bit already, so that loading the selector need not write it (a descriptor in ROM)."""
    data_type = 0x93 if accessed else 0x92
    table = f"gdt + {link_base:#x}" if link_base else "gdt"
    return f"""\
    .p2align 3
gdt: .quad 0
    .quad 0x00cf{data_type:02x}000000ffff
gdtr: .word 15
    .long {table}"""


def xorshift32(seed: str) -> str:
    """A `rand` routine: the next xorshift32 value (Marsaglia 2003: 13, 17, 5) of the 32-bit
    `seed` operand, stored back and returned in %eax (%edx clobbered)."""
    return f"""\
rand:                               # xorshift32 -> %eax
    movl {seed}, %eax
    mov %eax, %edx
    shl $13, %edx
    xor %edx, %eax
    mov %eax, %edx
    shr $17, %edx
    xor %edx, %eax
    mov %eax, %edx
    shl $5, %edx
    xor %edx, %eax
    movl %eax, {seed}
    ret"""
