package io.hpvm.runtime.linux;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every thread of some processes stopped through ptrace, for changes to code other threads may be executing
 * (compaction): each thread is seized and interrupted, and {@code /proc/PID/task} is read again until no thread
 * appears that is not stopped (a thread created meanwhile is stopped too). Closing resumes them all, each with the
 * signal it was about to take, if any. While the world is stopped, no instruction of those processes runs, and the
 * return to user mode on resumption serialises each core, so code written meanwhile is what they see next.
 *
 * <p>Must be used from the thread that owns the supervisor's ptrace rights (its main thread); another process may
 * use it where ptrace permits (root, or ptrace_scope 0).
 */
public final class WorldStop implements AutoCloseable {

    /**
     * A stopped thread and where it stopped.
     *
     * @param restarts whether it was stopped in a system call the kernel restarts on resumption, which it does by
     *                 moving the instruction pointer back over the 2-byte {@code syscall}: it then resumes at
     *                 {@code rip - 2}, not at {@code rip}
     * @param sp       its stack pointer
     */
    public record StoppedThread(int pid, int tid, long rip, boolean restarts, long sp) {
    }

    /** -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK: rax of an interrupted system call. */
    private static boolean restarting(long[] regs) {
        long rax = regs[Tracee.RAX];
        return regs[Tracee.ORIG_RAX] >= 0 && (rax == -512 || rax == -513 || rax == -514 || rax == -516);
    }

    private static final class Held {
        final int pid;
        final Tracee tracee;
        int signal;
        long[] regs;

        Held(int pid, Tracee tracee) {
            this.pid = pid;
            this.tracee = tracee;
        }
    }

    /** Exit statuses of processes that ended while being stopped (this wait reaped them). */
    private static final Map<Integer, WaitStatus> REAPED = new java.util.concurrent.ConcurrentHashMap<>();

    private final Map<Integer, Held> held = new LinkedHashMap<>();
    /** When the first thread was asked to stop (before that, the world runs), and when the last was resumed. */
    private long stoppedAt;
    /** When every thread was seen stopped, and when resuming them began. */
    private long allStoppedAt;
    private long resumingAt;
    private long resumedAt;
    private boolean resumed;

    private WorldStop() {
    }

    /** Stops every thread of {@code pids}; a process that ended meanwhile is left out. */
    public static WorldStop stop(Collection<Integer> pids) throws SystemException {
        WorldStop w = new WorldStop();
        try {
            for (int round = 0; ; round++) {
                List<Held> fresh = new ArrayList<>();
                for (int pid : pids) {
                    for (int tid : ProcFs.threads(pid)) {
                        if (!w.held.containsKey(tid)) {
                            Tracee t;
                            try {
                                t = Tracee.seizeThread(tid);
                            } catch (SystemException e) {
                                if (Files.exists(Path.of("/proc/" + pid + "/task/" + tid))) {
                                    throw new SystemException("cannot stop thread " + tid + " of pid " + pid + ": "
                                        + e.getMessage() + " (stopping a worker's threads needs ptrace rights over it:"
                                        + " its supervisor has them; see kernel.yama.ptrace_scope)", e);
                                }
                                continue; // it exited meanwhile
                            }
                            Held h = new Held(pid, t);
                            w.held.put(tid, h);
                            fresh.add(h);
                            w.stoppedAt = w.stoppedAt == 0 ? System.nanoTime() : w.stoppedAt;
                            t.interrupt();
                        }
                    }
                }
                if (fresh.isEmpty()) {
                    w.allStoppedAt = System.nanoTime();
                    return w;
                }
                for (Held h : fresh) {
                    WaitStatus st = h.tracee.awaitStop(Tracee.SPIN_NANOS);
                    if (!st.stopped()) {
                        w.held.remove(h.tracee.pid()); // it exited
                        if (h.tracee.pid() == h.pid) {
                            REAPED.put(h.pid, st); // the process's exit status, consumed here: see takeReaped
                        }
                        continue;
                    }
                    if (st.event() == 0 && st.stopSignal() != LibC.SIGTRAP) {
                        h.signal = st.stopSignal(); // a signal it was about to take: given back on resumption
                    }
                    h.regs = h.tracee.getRegs();
                }
                if (round > 1000) {
                    throw new SystemException("threads of pids " + pids + " keep appearing faster than hpvm can stop "
                        + "them");
                }
            }
        } catch (SystemException | RuntimeException e) {
            w.close();
            throw e;
        }
    }

    /**
     * The exit status of process {@code pid} if it ended while its threads were being stopped (the wait that saw it
     * reaped it, so its parent's own wait would not), once; else null.
     */
    public static WaitStatus takeReaped(int pid) {
        return REAPED.remove(pid);
    }

    /** The stopped threads, with their instruction pointers. */
    public List<StoppedThread> threads() {
        List<StoppedThread> out = new ArrayList<>();
        held.forEach((tid, h) -> out.add(new StoppedThread(h.pid, tid, h.regs[Tracee.RIP], restarting(h.regs),
            h.regs[Tracee.RSP])));
        return out;
    }

    /** The registers of stopped thread {@code tid} ({@code struct user_regs_struct}, {@link Tracee#RIP} etc.). */
    public long[] registers(int tid) {
        Held h = held.get(tid);
        if (h == null) {
            throw new IllegalArgumentException("thread " + tid + " is not stopped here");
        }
        return h.regs.clone();
    }

    /**
     * The tracee of stopped thread {@code tid}, or null when it is not held here: for system calls run in it while
     * the world is stopped ({@code Injector}, which restores its registers afterwards).
     */
    public Tracee tracee(int tid) {
        Held h = held.get(tid);
        return h == null ? null : h.tracee;
    }

    /**
     * A stopped thread of process {@code pid} to run system calls in: its main thread while it lives (a thread
     * blocked in a system call is fine: {@code Injector} restores its registers and the call restarts), else any;
     * null when none of its threads is held (it ended).
     */
    public Tracee traceeOf(int pid) {
        Tracee main = tracee(pid);
        if (main != null) {
            return main;
        }
        for (Map.Entry<Integer, Held> e : held.entrySet()) {
            if (e.getValue().pid == pid) {
                return e.getValue().tracee;
            }
        }
        return null;
    }

    /**
     * Sets a stopped thread's instruction pointer: it resumes there (at {@code rip - 2} if it
     * {@link StoppedThread#restarts restarts} a system call).
     */
    public void moveTo(int tid, long rip) throws SystemException {
        Held h = held.get(tid);
        if (h == null) {
            throw new IllegalArgumentException("thread " + tid + " is not stopped here");
        }
        long[] regs = h.regs.clone();
        regs[Tracee.RIP] = rip;
        h.tracee.setRegs(regs);
        h.regs = regs;
    }

    /**
     * How long the world has been stopped, in microseconds: from the moment the first thread was asked to stop until
     * now, or, once {@link #close closed}, until the last thread was resumed (an upper bound of any thread's pause).
     */
    public long micros() {
        return stoppedAt == 0 ? 0 : ((resumed ? resumedAt : System.nanoTime()) - stoppedAt) / 1000;
    }

    /**
     * Where the pause went, once {@link #close closed}: stopping the threads (from the first request to the last
     * thread seen stopped), the caller's work with them stopped, and resuming them; e.g. "stop 0.31, work 0.12,
     * resume 0.08 ms".
     */
    public String phases(String work) {
        return String.format("stop %.2f, %s %.2f, resume %.2f ms", (allStoppedAt - stoppedAt) / 1e6, work,
            (resumingAt - allStoppedAt) / 1e6, (resumedAt - resumingAt) / 1e6);
    }

    /** Resumes every thread (each with its pending signal). */
    @Override
    public void close() {
        if (resumed) {
            return;
        }
        resumed = true;
        resumingAt = System.nanoTime();
        for (Held h : held.values()) {
            try {
                h.tracee.detach(h.signal);
            } catch (SystemException e) {
                // the thread ended while stopped (killed): nothing to resume
            }
        }
        resumedAt = System.nanoTime();
    }
}
