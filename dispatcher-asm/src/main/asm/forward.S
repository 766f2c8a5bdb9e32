/*
 * Signal forwarder, installed by the supervisor (hpvm run) in its own process with sigaction(SA_SIGINFO) for
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT: it sends the same signal to the worker with a raw kill system call.
 * A handler in assembly is async-signal-safe by construction (no JVM, no locks, no errno), which also frees SIGQUIT
 * from the JVM's thread-dump handler.
 *
 *   void hpvm_forward_signal(int sig, siginfo_t *info, void *context)
 *
 * hpvm_forward_pid (a 4-byte int the supervisor writes) holds the worker's pid, or 0 before it exists.
 * A signal whose si_code is SI_KERNEL (0x80) came from the terminal, which sends it to the whole foreground
 * process group: the worker got its own copy, so forwarding would deliver it twice.
 */
        .text
        .globl  hpvm_forward_signal
        .type   hpvm_forward_signal, @function
hpvm_forward_signal:
        cmpl    $0x80, 8(%rsi)                  /* info->si_code == SI_KERNEL */
        je      1f
        movl    %edi, %esi                      /* signal number */
        movl    hpvm_forward_pid(%rip), %edi    /* worker pid */
        testl   %edi, %edi
        jle     1f
        movl    $62, %eax                       /* SYS_kill */
        syscall
1:      ret
        .size   hpvm_forward_signal, .-hpvm_forward_signal
        .section .note.GNU-stack,"",@progbits
