/* The guest `x86vm run` boots when no image is given: a boot sector that greets on COM1 and
 * shuts the machine down cleanly (exit status 0).
 *
 * Real mode, loaded at 0x7C00 and entered at 0000:7C00 (x86vm's flat loader or a PC BIOS).
 * The shutdown is the PC's own: pulse the reset line through the i8042 keyboard controller
 * (command 0xFE to port 0x64), which x86vm and QEMU -no-reboot turn into a clean exit; should
 * the controller be missing, a triple fault ends the run the same way: a fault with an empty
 * IDT, in protected mode (this machine's software KVM ignores the IDT limit in real mode and
 * cannot deliver a software INT through an empty IDT, so it is UD2 in protected mode).
 * A debug-exit write cannot give status 0: isa-debug-exit exits with (value << 1) | 1.
 *
 * Rebuild (tests/test_boot_hello.py checks this reproduces hello.bin byte for byte):
 *   gcc -m32 -c hello.S -o hello.o
 *   ld -m elf_i386 -Ttext=0x7c00 -e _start --oformat=binary -o hello.bin hello.o
 */
    .code16
    .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7c00, %sp
    ljmp $0, $start                  /* a BIOS may enter at 07C0:0000 */
start:
    mov $uart_init, %si              /* (port offset, value) pairs for COM1 at 0x3F8 */
1:  lodsw
    test %ax, %ax
    jz 2f
    mov $0x3f8, %dx
    add %al, %dl
    mov %ah, %al
    out %al, %dx
    jmp 1b

2:  mov $greeting, %si
3:  lodsb
    test %al, %al
    jz shutdown
    mov %al, %ah
    mov $0x3fd, %dx                  /* wait for LSR.THRE */
4:  in %dx, %al
    test $0x20, %al
    jz 4b
    mov $0x3f8, %dx
    mov %ah, %al
    out %al, %dx
    jmp 3b

shutdown:
    mov $0x64, %dx                   /* i8042: wait (bounded) for an empty input buffer, */
    mov $0x400, %cx                  /* then pulse the reset line */
5:  in %dx, %al
    test $0x02, %al
    loopnz 5b
    mov $0xfe, %al
    out %al, %dx
    lgdt gdt_pointer                 /* still running: triple fault in protected mode */
    mov %cr0, %eax
    or $1, %al
    mov %eax, %cr0
    ljmp $0x08, $protected
    .code32
protected:
    lidt empty_idt                   /* no vector is inside the IDT: #UD, #DF, shutdown */
    ud2
6:  hlt
    jmp 6b
    .code16

uart_init:                           /* offset, value: IER=0, DLAB, divisor 1, 8N1, FIFOs */
    .byte 1, 0x00, 3, 0x80, 0, 0x01, 1, 0x00, 3, 0x03, 2, 0x07, 4, 0x03
    .word 0
empty_idt:
    .word 0
    .long 0
gdt_pointer:
    .word 15
    .long gdt
    .align 8
gdt:
    .quad 0
    .quad 0x00cf9b000000ffff         /* 0x08: flat 32-bit code */
greeting:
    .asciz "Hello from the x86vm guest!\r\n"

    .org 510
    .byte 0x55, 0xaa
