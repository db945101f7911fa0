/* The real-mode part of a bzImage, reduced to the boot sector and the setup header of the
 * Linux x86 boot protocol 2.15 (Documentation/arch/x86/boot.rst, "The Real-Mode Kernel
 * Header"). There is no real-mode setup code: the image is only for loaders that use the
 * 64-bit entry at code32_start + 0x200. Each .org checks a field's offset from boot.rst. */
#define PREF_ADDRESS 0x1000000

    .section .setup, "a"
    .code16
    .org 0x1f1
setup_sects:        .byte 1
root_flags:         .word 0
syssize:            .long 0
ram_size:           .word 0
vid_mode:           .word 0xffff        /* "normal" */
root_dev:           .word 0
    .org 0x1fe
boot_flag:          .word 0xaa55
    .org 0x200
jump:               .byte 0xeb, header_end - 0x202
    .org 0x202
header:             .ascii "HdrS"
version:            .word 0x020f
realmode_swtch:     .long 0
start_sys_seg:      .word 0
kernel_version:     .word 0
    .org 0x210
type_of_loader:     .byte 0
loadflags:          .byte 0x01          /* LOADED_HIGH */
setup_move_size:    .word 0
    .org 0x214
code32_start:       .long PREF_ADDRESS
ramdisk_image:      .long 0
ramdisk_size:       .long 0
bootsect_kludge:    .long 0
heap_end_ptr:       .word 0
ext_loader_ver:     .byte 0
ext_loader_type:    .byte 0
    .org 0x228
cmd_line_ptr:       .long 0
initrd_addr_max:    .long 0x7fffffff
kernel_alignment:   .long 0x200000
relocatable_kernel: .byte 0             /* linked to run at PREF_ADDRESS only */
min_alignment:      .byte 21
    .org 0x236
xloadflags:         .word 0x0001        /* XLF_KERNEL_64: entry at code32_start + 0x200 */
cmdline_size:       .long 2047
hardware_subarch:   .long 0
hardware_subarch_data: .quad 0
payload_offset:     .long 0
payload_length:     .long 0
setup_data:         .quad 0
    .org 0x258
pref_address:       .quad PREF_ADDRESS
    .org 0x260
init_size:          .long _end - PREF_ADDRESS
handover_offset:    .long 0
kernel_info_offset: .long 0
header_end:
    .org 0x400                          /* boot sector + setup_sects sectors */
