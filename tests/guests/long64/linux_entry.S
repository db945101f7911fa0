/* Linux 64-bit boot protocol entry (boot.rst "64-bit Boot Protocol"): long mode, paging on,
 * RSI = struct boot_params. Calls main64(1, boot_params). */
    .section .text.entry, "ax"
    .code64
    .globl linux_start
linux_start:
    mov $stack_top, %rsp
    mov $1, %edi                /* boot kind 1: Linux; RSI already holds the zero page */
    call main64
1:  cli
    hlt
    jmp 1b
