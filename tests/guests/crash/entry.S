/* A guest that crashes at a known instruction in the upper half of a 64-bit address space:
 * Multiboot entry (32-bit, paging off), PAE + 4-level page tables mapping the first 2 MiB both
 * at 0 and at 0xffffffff80000000, long mode, a jump to the high alias, a stack there with two
 * known words, then `ud2` with an empty IDT: #UD cannot be delivered (#GP, then #DF), so the
 * processor shuts down (triple fault, SDM Vol. 3A §6.15 "Interrupt 8"). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003
#define HIGH 0xffffffff80000000

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .text
    .code32
    .globl _start
_start:
    cli
    lgdt gdt_descriptor
    movl $pdpt_low + 3, pml4
    movl $pdpt_high + 3, pml4 + 511 * 8
    movl $pd + 3, pdpt_low
    movl $pd + 3, pdpt_high + 510 * 8
    movl $0x83, pd                      /* 2 MiB page at 0: present, writable, PS */
    mov $pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax                      /* CR4.PAE */
    mov %eax, %cr4
    mov $0xC0000080, %ecx               /* IA32_EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax                /* CR0.PG | CR0.PE */
    mov %eax, %cr0
    ljmp $0x08, $long_mode

    .code64
long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $idt_descriptor, %eax
    lidt (%rax)                         /* limit 0: no exception can be delivered */
    movabs $HIGH, %rbx
    mov $upper_half, %eax
    add %rbx, %rax
    jmp *%rax
upper_half:
    mov $stack_top, %esp
    add %rbx, %rsp
    pushq $0x1111
    pushq $0x2222
    movabs $0x4141414141414141, %rax
    mov $0xc0ffee, %ecx
    .globl crash_here
crash_here:
    ud2
    hlt

    .section .rodata
    .align 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff             /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff             /* 0x10: data */
gdt_descriptor:
    .word gdt_descriptor - gdt - 1
    .long gdt
idt_descriptor:
    .word 0
    .quad 0

    .bss
    .align 4096
pml4: .skip 4096
pdpt_low: .skip 4096
pdpt_high: .skip 4096
pd: .skip 4096
    .skip 4096
stack_top:
