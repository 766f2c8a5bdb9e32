/*
 * Injected system call. hpvm writes these bytes into the stopped worker, sets rax and the argument registers,
 * points rip here and continues: the kernel runs the system call, and the int3 stops the worker again with the
 * result in rax. The original bytes and registers are restored afterwards.
 */
        .text
        .globl  hpvm_syscall
        .type   hpvm_syscall, @function
hpvm_syscall:
        syscall
        int3
        .size   hpvm_syscall, .-hpvm_syscall
        .section .note.GNU-stack,"",@progbits
