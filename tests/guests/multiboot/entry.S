/* Multiboot v1 entry for the ELF32 test guest (Multiboot 0.6.96 §3.1, §3.2). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, memory information */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .text
    .globl _start
_start:
    mov $stack_top, %esp
    push %ebx /* multiboot_info */
    push %eax /* boot loader magic */
    call mb_main
1:  cli
    hlt
    jmp 1b

    .bss
    .align 16
    .skip 8192
stack_top:
