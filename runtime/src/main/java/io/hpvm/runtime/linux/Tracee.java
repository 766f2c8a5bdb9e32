package io.hpvm.runtime.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.Pointer;

/**
 * A process under {@code PTRACE_SEIZE}. Every method must be called from the thread that seized it (a kernel
 * rule), which is the supervisor's main thread.
 */
public final class Tracee {

    /** Register indexes in {@code struct user_regs_struct}. */
    public static final int R15 = 0, R14 = 1, R13 = 2, R12 = 3, RBP = 4, RBX = 5, R11 = 6, R10 = 7, R9 = 8, R8 = 9,
        RAX = 10, RCX = 11, RDX = 12, RSI = 13, RDI = 14, ORIG_RAX = 15, RIP = 16, CS = 17, EFLAGS = 18, RSP = 19;
    private static final int REGS_SIZE = 27 * 8;


    private final int pid;
    private final Memory regsBuf = new Memory(REGS_SIZE);

    private Tracee(int pid) {
        this.pid = pid;
    }

    public int pid() {
        return pid;
    }

    /** Seizes a process; the tracee is killed if this process dies before detaching. */
    public static Tracee seize(int pid) throws SystemException {
        try {
            LibCDirect.ptrace(LibC.PTRACE_SEIZE, pid, 0, LibC.PTRACE_O_TRACEEXEC | LibC.PTRACE_O_EXITKILL);
        } catch (LastErrorException e) {
            throw new SystemException("ptrace(PTRACE_SEIZE, " + pid + "): " + e.getMessage()
                + (e.getErrorCode() == 1 ? " (ptrace is forbidden here: check kernel.yama.ptrace_scope, seccomp, or "
                + "the container's CAP_SYS_PTRACE)" : ""), e);
        }
        return new Tracee(pid);
    }

    /**
     * Seizes one thread of a running worker for a short operation ({@link RemoteThread}); without
     * {@code PTRACE_O_EXITKILL}, since the worker must outlive the supervisor's interest in it.
     */
    public static Tracee seizeThread(int tid) throws SystemException {
        try {
            LibCDirect.ptrace(LibC.PTRACE_SEIZE, tid, 0, 0);
        } catch (LastErrorException e) {
            throw new SystemException("ptrace(PTRACE_SEIZE, thread " + tid + "): " + e.getMessage(), e);
        }
        return new Tracee(tid);
    }

    /** Writes one 8-byte word of the stopped tracee's memory ({@code PTRACE_POKEDATA}). */
    public void poke(long address, long value) throws SystemException {
        call("PTRACE_POKEDATA", LibC.PTRACE_POKEDATA, address, value);
    }

    /** Stops the (seized, running) tracee; the stop is then reported by {@link #waitStop}. */
    public void interrupt() throws SystemException {
        call("PTRACE_INTERRUPT", LibC.PTRACE_INTERRUPT, 0, 0);
    }

    /** Detaches, delivering {@code signal} (0 for none) as the tracee resumes. */
    public void detach(int signal) throws SystemException {
        call("PTRACE_DETACH", LibC.PTRACE_DETACH, 0, signal);
    }

    /** The next stop or exit, or null when there is none yet. */
    public WaitStatus pollStop() throws SystemException {
        int[] status = new int[1];
        try {
            int got = LibCDirect.waitpid(pid, status, LibC.__WALL | LibC.WNOHANG);
            return got == 0 ? null : new WaitStatus(status[0]);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == 4) {
                return null;
            }
            throw SystemException.of("waitpid(" + pid + ")", e.getErrorCode());
        }
    }

    /** Waits for the next stop or exit of the tracee. */
    public WaitStatus waitStop() throws SystemException {
        int[] status = new int[1];
        while (true) {
            try {
                LibCDirect.waitpid(pid, status, LibC.__WALL);
                return new WaitStatus(status[0]);
            } catch (LastErrorException e) {
                if (e.getErrorCode() != 4) { // EINTR
                    throw SystemException.of("waitpid(" + pid + ")", e.getErrorCode());
                }
            }
        }
    }

    /**
     * How long {@link #awaitStop} polls for a stop hpvm asked for, before it blocks: a stopped world's threads (they
     * answer an interrupt within microseconds when they run on another CPU). Spinning longer than the answer takes
     * costs nothing then, but where the tracee shares this thread's only CPU it holds the CPU the tracee needs, so
     * the system calls hpvm injects and the run to the entry point poll for {@link #SPIN_SHORT_NANOS} only (a 20 ms
     * spin there made launch 0.2-0.65 s slower in the bench, which runs hpvm and the program on one CPU).
     */
    static final long SPIN_NANOS = 20_000_000;
    static final long SPIN_SHORT_NANOS = 1_000_000;

    /**
     * The next stop (or exit), polled without sleeping for up to {@code spinNanos} before blocking in {@code waitpid}:
     * a supervisor asleep in {@code waitpid} must first be woken, which on a virtual machine whose idle CPU the
     * hypervisor has descheduled took 1-11 ms (the Lua bench, 1 thread).
     */
    public WaitStatus awaitStop(long spinNanos) throws SystemException {
        long until = System.nanoTime() + spinNanos;
        while (System.nanoTime() < until) {
            WaitStatus st = pollStop();
            if (st != null) {
                return st;
            }
            Thread.onSpinWait();
        }
        return waitStop();
    }

    public void cont(int signal) throws SystemException {
        call("PTRACE_CONT", LibC.PTRACE_CONT, 0, signal);
    }

    public void detach() throws SystemException {
        call("PTRACE_DETACH", LibC.PTRACE_DETACH, 0, 0);
    }

    /** Reads all general-purpose registers. */
    public long[] getRegs() throws SystemException {
        call("PTRACE_GETREGS", LibC.PTRACE_GETREGS, 0, Pointer.nativeValue(regsBuf));
        return regsBuf.getLongArray(0, 27);
    }

    public void setRegs(long[] regs) throws SystemException {
        regsBuf.write(0, regs, 0, 27);
        call("PTRACE_SETREGS", LibC.PTRACE_SETREGS, 0, Pointer.nativeValue(regsBuf));
    }

    private void call(String name, int request, long addr, long data) throws SystemException {
        try {
            LibCDirect.ptrace(request, pid, addr, data);
        } catch (LastErrorException e) {
            throw SystemException.of("ptrace(" + name + ", " + pid + ")", e.getErrorCode());
        }
    }

    /**
     * Continues until the tracee stops with SIGTRAP, passing any other signal on to it.
     *
     * @throws SystemException if it exits instead
     */
    public void contUntilTrap(String what) throws SystemException {
        int signal = 0;
        while (true) {
            cont(signal);
            WaitStatus st = awaitStop(SPIN_SHORT_NANOS);
            if (!st.stopped()) {
                throw new SystemException("worker " + pid + " " + st + " while " + what);
            }
            if (st.stopSignal() == LibC.SIGTRAP && st.event() == 0) {
                return;
            }
            signal = st.event() != 0 || st.stopSignal() == LibC.SIGTRAP ? 0 : st.stopSignal();
        }
    }

    /** The stack pointer of a call frame at or below {@code below}: as after a call, rsp + 8 is 16-byte aligned. */
    static long callFrame(long below) {
        return (below & ~0xfL) - 8;
    }

    /**
     * {@code saved} set up to call {@code function(args...)} (up to six integer arguments) with the return address
     * already stored at {@code sp}; no system call restart on the way in.
     */
    static long[] callRegisters(long[] saved, long sp, long function, long... args) {
        long[] regs = saved.clone();
        int[] argRegs = {RDI, RSI, RDX, RCX, R8, R9};
        for (int i = 0; i < args.length; i++) {
            regs[argRegs[i]] = args[i];
        }
        regs[RSP] = sp;
        regs[RIP] = function;
        regs[RAX] = 0;
        regs[ORIG_RAX] = -1;
        return regs;
    }
}
