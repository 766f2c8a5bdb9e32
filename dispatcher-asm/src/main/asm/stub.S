/*
 * Dispatcher stub: one per patchable function. Every rewritten call site and every entry redirect jumps here; the
 * stub jumps to whatever address the function's slot holds. A swap is one 8-byte store into the slot.
 *
 * The loader instantiates this object once per function, binding hpvm_slot to that function's slot address. The
 * slot table is mapped within +-2 GiB of the stubs, so the rip-relative displacement (R_X86_64_PC32) always fits.
 */
        .text
        .globl  hpvm_stub
        .type   hpvm_stub, @function
hpvm_stub:
        jmp     *hpvm_slot(%rip)
        .size   hpvm_stub, .-hpvm_stub
        .section .note.GNU-stack,"",@progbits
