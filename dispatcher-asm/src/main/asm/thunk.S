/*
 * Register-preserving thunk, placed in front of a new version that may write caller-saved registers the original
 * version never wrote. Callers compiled with gcc -fipa-ra (on at -O2) may keep values in exactly those registers
 * across the call; the thunk restores them after the new version returns, so to every caller the new version
 * clobbers no more than the old one did.
 *
 * hpvm_thunk_mask (a constant bound at link time, R_X86_64_32) says which registers to restore: bit 0..8 = rax,
 * rcx, rdx, rsi, rdi, r8, r9, r10, r11; bit 9..24 = xmm0..xmm15. hpvm_thunk_target is the new version.
 *
 * Stack arguments: the thunk's frame sits between the caller's arguments and the new version, so it copies the
 * caller's first 16 stack slots (128 bytes above the return address) to the bottom of its frame, where the new
 * version finds them at the usual offsets. Functions with more than 128 bytes of stack arguments are not supported
 * through a thunk.
 *
 * It carries call frame information (.cfi_*), so that a C++ exception thrown by the new version unwinds through the
 * thunk's frame to the caller; hpvm registers the thunk's .eh_frame with the new version's.
 *
 * Frame (472 bytes; 472 = 8 mod 16 keeps the call 16-byte aligned):
 *   0..127    copied stack arguments
 *   128..199  rax rcx rdx rsi rdi r8 r9 r10 r11
 *   208..463  xmm0..xmm15
 */
        .set    FRAME, 472
        .text
        .globl  hpvm_thunk
        .type   hpvm_thunk, @function
hpvm_thunk:
        .cfi_startproc
        sub     $FRAME, %rsp
        .cfi_adjust_cfa_offset FRAME
        mov     %rax, 128(%rsp)
        mov     %rcx, 136(%rsp)
        mov     %rdx, 144(%rsp)
        mov     %rsi, 152(%rsp)
        mov     %rdi, 160(%rsp)
        mov     %r8, 168(%rsp)
        mov     %r9, 176(%rsp)
        mov     %r10, 184(%rsp)
        mov     %r11, 192(%rsp)
        movdqu  %xmm0, 208(%rsp)
        movdqu  %xmm1, 224(%rsp)
        movdqu  %xmm2, 240(%rsp)
        movdqu  %xmm3, 256(%rsp)
        movdqu  %xmm4, 272(%rsp)
        movdqu  %xmm5, 288(%rsp)
        movdqu  %xmm6, 304(%rsp)
        movdqu  %xmm7, 320(%rsp)
        movdqu  %xmm8, 336(%rsp)
        movdqu  %xmm9, 352(%rsp)
        movdqu  %xmm10, 368(%rsp)
        movdqu  %xmm11, 384(%rsp)
        movdqu  %xmm12, 400(%rsp)
        movdqu  %xmm13, 416(%rsp)
        movdqu  %xmm14, 432(%rsp)
        movdqu  %xmm15, 448(%rsp)
        .irp    i, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        mov     FRAME+8+8*\i(%rsp), %r11        /* r11 is never an argument register */
        mov     %r11, 8*\i(%rsp)
        .endr
        mov     192(%rsp), %r11
        call    hpvm_thunk_target
        mov     $hpvm_thunk_mask, %r11d
        .macro  restore bit, reg, slot
        bt      $\bit, %r11d
        jnc     1f
        mov     \slot(%rsp), \reg
1:
        .endm
        .macro  restorex bit, reg, slot
        bt      $\bit, %r11d
        jnc     1f
        movdqu  \slot(%rsp), \reg
1:
        .endm
        restore 0, %rax, 128
        restore 1, %rcx, 136
        restore 2, %rdx, 144
        restore 3, %rsi, 152
        restore 4, %rdi, 160
        restore 5, %r8, 168
        restore 6, %r9, 176
        restore 7, %r10, 184
        restorex 9, %xmm0, 208
        restorex 10, %xmm1, 224
        restorex 11, %xmm2, 240
        restorex 12, %xmm3, 256
        restorex 13, %xmm4, 272
        restorex 14, %xmm5, 288
        restorex 15, %xmm6, 304
        restorex 16, %xmm7, 320
        restorex 17, %xmm8, 336
        restorex 18, %xmm9, 352
        restorex 19, %xmm10, 368
        restorex 20, %xmm11, 384
        restorex 21, %xmm12, 400
        restorex 22, %xmm13, 416
        restorex 23, %xmm14, 432
        restorex 24, %xmm15, 448
        restore 8, %r11, 192                    /* last: r11 holds the mask until here */
        add     $FRAME, %rsp
        .cfi_adjust_cfa_offset -FRAME
        ret
        .cfi_endproc
        .size   hpvm_thunk, .-hpvm_thunk
        .section .note.GNU-stack,"",@progbits
