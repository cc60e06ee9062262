/* coro_switch_aarch64.S: the aarch64 (AAPCS64) context switch and first-entry
 * trampoline for stackful coroutines (see coro.c for the frame layout). */

#if defined(__aarch64__) && !defined(AT_CORO_NO_ASM)

    .text

/* void at__coro_switch_asm(void **save_sp, void *new_sp)
 *
 * Saves the callee-saved registers x19-x30, d8-d15 and FPCR in a 176-byte
 * record on the current stack, stores sp in *save_sp, loads new_sp, restores
 * the same record from it and returns through the restored x30. Layout from
 * the saved sp upwards (coro.c's walker and initial frame rely on it):
 *   +0 x19 x20  +16 x21 x22  +32 x23 x24  +48 x25 x26  +64 x27 x28
 *   +80 x29 (frame pointer)  +88 x30 (return address)
 *   +96 d8..d15 (64 bytes)  +160 fpcr  +168 padding */
    .globl at__coro_switch_asm
    .hidden at__coro_switch_asm
    .type at__coro_switch_asm, %function
    .p2align 4
at__coro_switch_asm:
    .cfi_startproc
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x2, fpcr
    str x2, [sp, #160]
    mov x2, sp
    str x2, [x0]
    mov sp, x1
    ldr x2, [sp, #160]
    msr fpcr, x2
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .cfi_endproc
    .size at__coro_switch_asm, .-at__coro_switch_asm

/* The trampoline sits at the bottom of every suspended stack: it lives with
 * the rest of the await machinery (see AT__AWAIT_TEXT in coro.h). */
    .section at_await_text, "ax", %progbits

/* First code a new coroutine runs: x19 holds the coroutine pointer, x29 is 0
 * (which ends every frame-pointer walk here); at__coro_entry never returns. It
 * is entered with a branch and a zero link register, not a bl: a bl would push
 * an entry on the CPU's return-address stack that no return ever takes, and
 * every return of the resumer's frames after the coroutine's last switch back
 * would then be predicted one frame off (see coro_switch_x86_64.S). */
    .globl at__coro_trampoline_asm
    .hidden at__coro_trampoline_asm
    .type at__coro_trampoline_asm, %function
    .p2align 4
at__coro_trampoline_asm:
    .cfi_startproc
    .cfi_undefined x30
    mov x0, x19
    mov x30, xzr
    b at__coro_entry
    brk #0
    .cfi_endproc
    .size at__coro_trampoline_asm, .-at__coro_trampoline_asm

#endif

    .section .note.GNU-stack, "", %progbits
