/* coro_switch_x86_64.S: the x86_64 (System V) context switch and first-entry
 * trampoline for stackful coroutines (see coro.c for the frame layout). */

#if defined(__x86_64__) && !defined(AT_CORO_NO_ASM)

#if defined(__CET__) && (__CET__ & 1)
#define AT_ENDBR endbr64
#else
#define AT_ENDBR
#endif

    .text

/* void at__coro_switch_asm(void **save_sp, void *new_sp)
 *
 * Pushes the callee-saved registers (rbp, rbx, r12-r15) and the MXCSR and
 * x87 control words on the current stack, stores the stack pointer in
 * *save_sp, loads new_sp and pops the same record from it, then returns to
 * whatever return address sits above that record. The saved-stack layout,
 * from the saved sp upwards (coro.c's walker and initial frame rely on it):
 *   +0 mxcsr (4 bytes)  +4 x87 control word (2 bytes, 2 padding)
 *   +8 r15  +16 r14  +24 r13  +32 r12  +40 rbx  +48 rbp  +56 return address */
    .globl at__coro_switch_asm
    .hidden at__coro_switch_asm
    .type at__coro_switch_asm, @function
    .p2align 4
at__coro_switch_asm:
    .cfi_startproc
    AT_ENDBR
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsp, %rax
    movq %rsi, %rsp
    /* Loading MXCSR / the x87 control word is slow (it serialises the FP
     * pipeline): do it only when the target context's differ from ours. */
    movl (%rax), %ecx
    cmpl %ecx, (%rsp)
    jne 1f
    movw 4(%rax), %cx
    cmpw %cx, 4(%rsp)
    jne 1f
2:
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
1:
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    jmp 2b
    .cfi_endproc
    .size at__coro_switch_asm, .-at__coro_switch_asm

/* The trampoline sits at the bottom of every suspended stack: it lives with
 * the rest of the await machinery (see AT__AWAIT_TEXT in coro.h). */
    .section at_await_text, "ax", @progbits

/* First code a new coroutine runs: the initial frame built by coro.c puts the
 * coroutine pointer in rbx and 0 in rbp (which ends every frame-pointer walk
 * here); at__coro_entry never returns. It is entered with a jump over a zero
 * return address, not a call: a call would leave an entry on the CPU's return
 * stack buffer that no return ever takes, and every return of the resumer's
 * frames after the coroutine's last switch back would then be predicted one
 * frame off (a mispredict each, several per task; the zero also ends walks). */
    .globl at__coro_trampoline_asm
    .hidden at__coro_trampoline_asm
    .type at__coro_trampoline_asm, @function
    .p2align 4
at__coro_trampoline_asm:
    .cfi_startproc
    .cfi_undefined rip
    AT_ENDBR
    movq %rbx, %rdi
    pushq $0
    jmp at__coro_entry
    ud2
    .cfi_endproc
    .size at__coro_trampoline_asm, .-at__coro_trampoline_asm

#endif

    .section .note.GNU-stack, "", @progbits
