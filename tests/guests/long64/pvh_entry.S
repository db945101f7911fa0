/* PVH entry (Xen x86/HVM direct boot ABI): 32-bit flat protected mode, paging off,
 * EBX = hvm_start_info. Builds 4 GiB of identity-mapped 2 MiB pages, enables long mode and
 * calls main64(0, start_info). */
    .pushsection .note.Xen, "a", @note
    .align 4
    .long 4, 4, 18              /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .align 4
    .long pvh_start
    .popsection

    .section .text.entry, "ax"
    .code32
    .globl pvh_start
pvh_start:
    mov %ebx, %edi
    mov $pdpt + 3, %eax
    mov %eax, pml4
    mov $pdpt, %ebx             /* pdpt[i] = pd + 4096 * i | present | writable */
    mov $pd + 3, %eax
    mov $4, %ecx
1:  mov %eax, (%ebx)
    add $8, %ebx
    add $4096, %eax
    loop 1b
    mov $pd, %ebx               /* pd[j] = j << 21 | present | writable | 2 MiB page */
    mov $0x83, %eax
    mov $2048, %ecx
2:  mov %eax, (%ebx)
    add $8, %ebx
    add $0x200000, %eax
    loop 2b

    mov %cr4, %eax
    or $0x20, %eax              /* CR4.PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax        /* CR0.PG | CR0.PE */
    mov %eax, %cr0
    lgdt gdt_pointer
    ljmp $0x08, $long_entry

    .code64
long_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $stack_top, %rsp
    mov %edi, %esi              /* zero-extends the start_info address */
    xor %edi, %edi              /* boot kind 0: PVH */
    call main64
3:  cli
    hlt
    jmp 3b

    .section .rodata
    .align 16
gdt:
    .quad 0
    .quad 0x00af9b000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf93000000ffff    /* 0x10: flat data */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .long gdt

    .bss
    .align 4096
pml4: .skip 4096
pdpt: .skip 4096
pd:   .skip 4 * 4096
