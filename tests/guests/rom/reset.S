/* A firmware ROM started from the reset vector (tests/test_boot_rom.py).
 *
 * Real mode at CS base FFFF0000, IP FFF0: the far jump at the ROM's last 16 bytes reloads CS
 * with F000, so the code then runs from the ROM's copy below 1 MiB. It prints on COM1 what
 * it finds, tries to write its own ROM (a ROM drops the write) and RAM below it, and ends on
 * the isa-debug-exit port with the number of checks that failed.
 */
    .code16
    .section .text
    .globl rom_start
rom_start:
    cli
    xorw %ax, %ax
    movw %ax, %ss
    movw $0x7000, %sp
    movw %cs, %ax
    movw %ax, %ds
    xorw %bx, %bx                   /* BX: failed checks */

    movw $msg_hello, %si
    call puts

    /* 1. the ROM is read-only: a write to it is dropped */
    movb marker, %al
    movb $0x55, marker
    cmpb marker, %al
    je 1f
    incw %bx
    movw $msg_rom_written, %si
    call puts
1:
    /* 2. RAM right below the ROM's low copy (DFFFF) and at 0x500 is writable */
    movw $0xd000, %ax
    movw %ax, %es
    movb $0xa5, %es:0xffff
    cmpb $0xa5, %es:0xffff
    je 2f
    incw %bx
    movw $msg_ram, %si
    call puts
2:
    /* 3. the reset vector's bytes are here too (the alias): EA (jmp far) at F000:FFF0 */
    cmpb $0xea, 0xfff0
    je 3f
    incw %bx
    movw $msg_alias, %si
    call puts
3:
    movw $msg_done, %si
    call puts
    movw %bx, %ax
    outb %al, $0xf4                 /* isa-debug-exit: status (AL << 1) | 1 */
    hlt

puts:                               /* DS:SI, NUL-terminated, to COM1 */
    lodsb
    testb %al, %al
    jz 9f
    movw $0x3f8, %dx
    outb %al, %dx
    jmp puts
9:  ret

msg_hello:       .asciz "rom: started from the reset vector\r\n"
msg_rom_written: .asciz "rom: a write changed the ROM\r\n"
msg_ram:         .asciz "rom: RAM below the ROM is not writable\r\n"
msg_alias:       .asciz "rom: the reset vector is not at F000:FFF0\r\n"
msg_done:        .asciz "rom: done\r\n"
marker:          .byte 0x3c

    .section .reset, "ax"
reset_vector:
    ljmp $0xf000, $0                /* rom_start: offset 0 */
    .fill 11, 1, 0xff
