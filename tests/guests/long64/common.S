/* Pieces shared by both 64-bit entries: the stack and the timer interrupt handler. */
    .text
    .code64
    .globl timer_isr
timer_isr:                      /* IRQ 0 via the 8259 remapped to vector 0x20 */
    push %rax
    lock incl timer_ticks(%rip)
    mov $0x20, %al              /* non-specific EOI */
    out %al, $0x20
    pop %rax
    iretq

    .bss
    .align 16
    .globl stack_top
    .skip 16384
stack_top:
