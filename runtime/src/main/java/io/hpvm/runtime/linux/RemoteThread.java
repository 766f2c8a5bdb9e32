package io.hpvm.runtime.linux;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One thread of a running worker, borrowed for a moment to run a function or a system call in it, the way a
 * debugger's {@code call} does: seize the thread, interrupt it, save its registers, set up a call frame below its
 * red zone whose return address is an {@code int3} hpvm owns, continue until that trap, and restore every register
 * (a system call the thread was blocked in restarts as if nothing happened). Only that thread pauses (0.25-2 ms
 * for a registration here, see docs/internals.md); the others keep running.
 *
 * <p>The thread is chosen to be one waiting at a quiet point ({@link #QUIET_SYSCALLS}: read, poll, nanosleep, ...;
 * not futex, not mmap): such a thread holds no lock the called function may take (a thread interrupted inside the
 * unwinder's own critical section, or inside malloc, would deadlock on it). Failing that, the main thread. When the
 * call does not return in time it is abandoned and reported: safe while the thread waits for a lock, which is the
 * one way {@code __register_frame_info} (GCC 12) can hang.
 *
 * <p>Must be used from the thread that owns the supervisor's ptrace rights (its main thread).
 */
public final class RemoteThread implements AutoCloseable {

    /**
     * System calls a thread waits in at a quiet point (read, poll, select, nanosleep, accept, recvfrom, recvmsg,
     * pause, wait4, rt_sigtimedwait, rt_sigsuspend, clock_nanosleep, epoll_wait, waitid, pselect6, ppoll,
     * epoll_pwait, accept4, recvmmsg, epoll_pwait2): not futex (a lock), and not the memory calls malloc makes while
     * holding its arena lock.
     */
    private static final java.util.Set<Integer> QUIET_SYSCALLS = java.util.Set.of(0, 7, 23, 35, 43, 45, 47, 34, 61,
        128, 130, 230, 232, 247, 270, 271, 281, 288, 299, 441);
    /** Below the red zone (128 bytes) with room to spare. */
    private static final long STACK_GAP = 512;

    private final Tracee tracee;
    private final long[] saved;
    private final long pad;
    private int pendingSignal;
    private long pausedAt;
    private long resumedAt;

    /**
     * @param pad the address of hpvm's call pad in the worker: {@code int3} at +0 (the return address of calls)
     *            and {@code syscall; int3} at +8
     */
    private RemoteThread(Tracee tracee, long pad) throws SystemException {
        this.tracee = tracee;
        this.pad = pad;
        long[] regs = null;
        try {
            pausedAt = System.nanoTime();
            tracee.interrupt();
            while (regs == null) {
                WaitStatus st = tracee.waitStop();
                if (!st.stopped()) {
                    throw new Gone(tracee.pid(), st, "");
                }
                if (st.event() == 0 && st.stopSignal() != LibC.SIGTRAP) {
                    pendingSignal = st.stopSignal(); // delivered when the thread is let go
                }
                regs = tracee.getRegs();
            }
        } catch (SystemException e) {
            try {
                tracee.detach(pendingSignal);
            } catch (SystemException ignored) {
                // the thread is gone
            }
            throw e;
        }
        this.saved = regs;
    }

    /** Borrows the best-suited thread of worker {@code pid}. */
    public static RemoteThread attach(int pid, long pad) throws SystemException {
        SystemException last = null;
        for (int tid : threadsByPreference(pid)) {
            Tracee t;
            try {
                t = Tracee.seizeThread(tid);
            } catch (SystemException e) {
                last = e; // exited meanwhile, or not permitted
                continue;
            }
            return new RemoteThread(t, pad);
        }
        throw last != null ? last : new SystemException("the worker (pid " + pid + ") has no threads left");
    }

    /** Thread ids of {@code pid}: those blocked in a system call other than futex first, the main thread next. */
    static List<Integer> threadsByPreference(int pid) {
        List<Integer> quiet = new ArrayList<>();
        List<Integer> rest = new ArrayList<>();
        List<Integer> tids = ProcFs.threads(pid);
        if (tids.isEmpty()) {
            rest.add(pid);
        }
        for (int tid : tids) {
            String syscall;
            try {
                syscall = Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/syscall")).trim();
            } catch (IOException e) {
                syscall = "running";
            }
            String nr = syscall.split(" ")[0];
            boolean blocked = nr.chars().allMatch(Character::isDigit) && QUIET_SYSCALLS.contains(
                Integer.parseInt(nr));
            (blocked ? quiet : rest).add(tid);
        }
        quiet.sort(null);
        rest.sort((a, b) -> a == pid ? -1 : b == pid ? 1 : Integer.compare(a, b));
        quiet.addAll(rest);
        return quiet;
    }

    /**
     * The borrowed thread ended (the worker exited or was killed meanwhile). Its wait status was consumed here: for
     * the worker's main thread that is the worker's exit status, which the supervisor must still report.
     */
    public static final class Gone extends SystemException {
        private final int tid;
        private final transient WaitStatus status;

        Gone(int tid, WaitStatus status, String when) {
            super("thread " + tid + " of the worker " + status + when);
            this.tid = tid;
            this.status = status;
        }

        public int tid() {
            return tid;
        }

        public WaitStatus status() {
            return status;
        }
    }

    public int tid() {
        return tracee.pid();
    }

    /**
     * Calls {@code function(args...)} (up to six integer arguments) in the thread and returns its {@code rax}.
     *
     * @throws SystemException when it does not return within {@code timeoutMs} (abandoned as described above) or
     *                         the thread dies
     */
    public long call(long function, long timeoutMs, long... args) throws SystemException {
        long sp = Tracee.callFrame(saved[Tracee.RSP] - STACK_GAP);
        tracee.poke(sp, pad); // the return address
        return run(Tracee.callRegisters(saved, sp, function, args), pad + 1, timeoutMs, "call of 0x" + Long.toHexString(function));
    }

    /** Runs system call {@code nr} in the thread through the pad's {@code syscall; int3}; returns rax. */
    public long syscall(int nr, long... args) throws SystemException {
        long[] regs = saved.clone();
        int[] argRegs = {Tracee.RDI, Tracee.RSI, Tracee.RDX, Tracee.R10, Tracee.R8, Tracee.R9};
        for (int i = 0; i < args.length; i++) {
            regs[argRegs[i]] = args[i];
        }
        regs[Tracee.RAX] = nr;
        regs[Tracee.ORIG_RAX] = -1;
        regs[Tracee.RIP] = pad + 8;
        return run(regs, pad + 11, 5000, "system call " + nr);
    }

    private long run(long[] regs, long trapRip, long timeoutMs, String what) throws SystemException {
        tracee.setRegs(regs);
        tracee.cont(0);
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        while (true) {
            WaitStatus st = tracee.pollStop();
            if (st == null) {
                if (System.nanoTime() > deadline) {
                    abandon();
                    throw new SystemException("the " + what + " in thread " + tracee.pid() + " of the worker did "
                        + "not return within " + timeoutMs + " ms (most likely waiting for a lock that thread holds); "
                        + "it was abandoned and the thread resumed where it was");
                }
                sleepBriefly();
                continue;
            }
            if (!st.stopped()) {
                throw new Gone(tracee.pid(), st, " during the " + what);
            }
            if (st.event() == 0 && st.stopSignal() == LibC.SIGTRAP) {
                long[] now = tracee.getRegs();
                if (now[Tracee.RIP] == trapRip) {
                    return now[Tracee.RAX];
                }
                tracee.cont(LibC.SIGTRAP); // not ours
            } else if (st.event() == 0) {
                tracee.cont(st.stopSignal()); // a signal for the worker: its handler runs on top of the call
            } else {
                tracee.cont(0);
            }
        }
    }

    private void abandon() throws SystemException {
        tracee.interrupt();
        while (true) {
            WaitStatus st = tracee.waitStop();
            if (!st.stopped()) {
                throw new Gone(tracee.pid(), st, "");
            }
            if (st.event() != 0 || st.stopSignal() == LibC.SIGTRAP) {
                return;
            }
            pendingSignal = st.stopSignal();
            tracee.cont(0);
        }
    }

    /** Spins for the first few milliseconds (a registration takes well under one), then sleeps 0.1 ms at a time. */
    private void sleepBriefly() {
        if (System.nanoTime() - pausedAt < 5_000_000) {
            Thread.onSpinWait();
        } else {
            java.util.concurrent.locks.LockSupport.parkNanos(100_000);
        }
    }

    /** How long the thread has been (or was) kept from running its own code, in microseconds. */
    public long pausedMicros() {
        return ((resumedAt == 0 ? System.nanoTime() : resumedAt) - pausedAt) / 1000;
    }

    /** Restores every register and lets the thread go (with any signal that arrived meanwhile). */
    @Override
    public void close() throws SystemException {
        try {
            tracee.setRegs(saved);
        } finally {
            tracee.detach(pendingSignal);
            resumedAt = System.nanoTime();
        }
    }
}
