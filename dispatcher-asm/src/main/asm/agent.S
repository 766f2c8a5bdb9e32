/*
 * hpvm's agent thread in the worker. The supervisor starts it once at launch, while the worker is still stopped at
 * its entry point, with pthread_create(&t, NULL, hpvm_agent, fds) (a real glibc thread: its own TLS, errno and
 * stack). It then runs calls the supervisor asks for, so that no thread of the program has to be paused for them
 * (today: __register_frame_info for a new version's unwind information, and the mmap of the page its struct object
 * records live in).
 *
 *   void *hpvm_agent(void *fds)      fds = request descriptor | response descriptor << 32
 *
 * A request is 72 bytes read from the request pipe: u64 sequence, u64 kind (0: call, 1: system call), u64 target
 * (function address or system call number), u64 arguments[6]. The answer is 16 bytes written to the response pipe:
 * u64 sequence, u64 rax. The sequence lets the supervisor discard a late answer to a request it gave up on.
 *
 * The thread blocks every signal (the program's handlers run on the program's threads, and a process-directed signal
 * never picks this one) and names itself "hpvm-agent" (/proc/PID/task/TID/comm). It ends, returning NULL, when its
 * request pipe reports end of file or an error: the supervisor is gone, or the program closed the descriptor.
 */
        .text
        .globl  hpvm_agent
        .type   hpvm_agent, @function
hpvm_agent:
        pushq   %rbx
        pushq   %r12
        pushq   %r13                            /* with the return address, rsp is now 16-byte aligned */
        subq    $96, %rsp                       /* 0..71: request, 72..87: answer; keeps the alignment */
        movl    %edi, %ebx                      /* request descriptor */
        movq    %rdi, %r12
        shrq    $32, %r12                       /* response descriptor */

        movl    $14, %eax                       /* rt_sigprocmask(SIG_SETMASK, &all, NULL, 8) */
        movl    $2, %edi
        leaq    hpvm_agent_all_signals(%rip), %rsi
        xorl    %edx, %edx
        movl    $8, %r10d
        syscall
        movl    $157, %eax                      /* prctl(PR_SET_NAME, "hpvm-agent") */
        movl    $15, %edi
        leaq    hpvm_agent_name(%rip), %rsi
        syscall

.Lnext:
        xorl    %r13d, %r13d                    /* bytes of the request read so far */
.Lread:
        xorl    %eax, %eax                      /* read(request, buffer + r13, 72 - r13) */
        movl    %ebx, %edi
        leaq    (%rsp,%r13), %rsi
        movl    $72, %edx
        subl    %r13d, %edx
        syscall
        cmpq    $-4, %rax                       /* EINTR */
        je      .Lread
        testq   %rax, %rax
        jle     .Ldone                          /* end of file or an error: nobody will ask again */
        addl    %eax, %r13d
        cmpl    $72, %r13d
        jb      .Lread

        movq    24(%rsp), %rdi
        movq    32(%rsp), %rsi
        movq    40(%rsp), %rdx
        movq    48(%rsp), %rcx
        movq    48(%rsp), %r10
        movq    56(%rsp), %r8
        movq    64(%rsp), %r9
        movq    16(%rsp), %rax
        cmpq    $1, 8(%rsp)
        je      .Lsyscall
        call    *%rax                           /* rsp is 16-byte aligned here, as the ABI wants */
        jmp     .Lanswer
.Lsyscall:
        syscall
.Lanswer:
        movq    (%rsp), %rcx
        movq    %rcx, 72(%rsp)
        movq    %rax, 80(%rsp)
.Lwrite:
        movl    $1, %eax                        /* write(response, answer, 16): atomic, below PIPE_BUF */
        movl    %r12d, %edi
        leaq    72(%rsp), %rsi
        movl    $16, %edx
        syscall
        cmpq    $-4, %rax
        je      .Lwrite
        cmpq    $16, %rax
        je      .Lnext

.Ldone:
        addq    $96, %rsp
        popq    %r13
        popq    %r12
        popq    %rbx
        xorl    %eax, %eax
        ret
        .size   hpvm_agent, .-hpvm_agent

        .balign 8
hpvm_agent_all_signals:
        .quad   -1
hpvm_agent_name:
        .asciz  "hpvm-agent"
        .section .note.GNU-stack,"",@progbits
