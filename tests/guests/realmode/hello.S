/* Real-mode test guest: a boot sector (loaded at 0x7C00, entered at 0000:7C00 by a BIOS or by
 * x86vm's flat loader). Prints over COM1 and exits through debug-exit with value 0x10. */
    .code16
    .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    ljmp $0, $normalized        /* a BIOS may enter at 07C0:0000 */
normalized:
    mov $0x3f9, %dx             /* IER = 0 */
    xor %al, %al
    out %al, %dx
    mov $0x3fb, %dx             /* LCR: DLAB, divisor 1, then 8N1 */
    mov $0x80, %al
    out %al, %dx
    mov $0x3f8, %dx
    mov $0x01, %al
    out %al, %dx
    mov $0x3f9, %dx
    xor %al, %al
    out %al, %dx
    mov $0x3fb, %dx
    mov $0x03, %al
    out %al, %dx

    mov $message, %si
    call print
    mov %cs, %ax                /* show the entry segment state a loader must leave */
    call print_hex16
    mov $message_ip, %si
    call print
    call here
here:
    pop %ax
    sub $(here - _start), %ax   /* offset of _start: the entry IP */
    call print_hex16
    mov $newline, %si
    call print

    mov $0xf4, %dx              /* debug-exit: status (0x10 << 1) | 1 = 33 */
    mov $0x10, %al
    out %al, %dx
halt:
    cli
    hlt
    jmp halt

/* print the NUL-terminated string at DS:SI */
print:
    lodsb
    test %al, %al
    jz 1f
    call putc
    jmp print
1:  ret

/* print AX as four hex digits */
print_hex16:
    mov $4, %cx
1:  rol $4, %ax
    push %ax
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 2f
    add $('a' - '9' - 1), %al
2:  call putc
    pop %ax
    loop 1b
    ret

/* send AL over COM1 once the transmitter holding register is empty */
putc:
    push %dx
    push %ax
    mov $0x3fd, %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    pop %ax
    mov $0x3f8, %dx
    out %al, %dx
    pop %dx
    ret

message:    .asciz "real-mode guest: hello, CS="
message_ip: .asciz " IP="
newline:    .asciz "\n"

    .org 510
    .byte 0x55, 0xaa
