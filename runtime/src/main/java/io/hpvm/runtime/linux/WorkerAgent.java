package io.hpvm.runtime.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * hpvm's agent thread in a worker ({@code dispatcher-asm/src/main/asm/agent.S}): a thread named {@code hpvm-agent}
 * that the supervisor starts at launch and that runs calls for it, so that no thread of the program is paused for
 * them. It waits in {@code read} on a request pipe; the supervisor writes a request and reads the answer from a
 * response pipe. Both pipes are made by the worker at launch (injected {@code pipe2}, moved to high close-on-exec
 * descriptors); the supervisor opens its ends through {@code /proc/PID/fd} and the worker then closes them, so
 * when the supervisor goes away the agent reads end of file and ends.
 *
 * <p>Compared with borrowing a program thread ({@link RemoteThread}), a call here can also wait for a lock: the
 * agent holds none of the program's, so it simply waits its turn like any other thread of the program.
 */
public final class WorkerAgent implements AutoCloseable {

    private static final int REQUEST = 72;
    private static final int ANSWER = 16;
    private static final short POLLIN = 1;
    private static final int EINTR = 4;
    private static final int EAGAIN = 11;

    private final int pid;
    private final int tid;
    private final int requestFd;
    private final int answerFd;
    private long sequence;

    private WorkerAgent(int pid, int tid, int requestFd, int answerFd) {
        this.pid = pid;
        this.tid = tid;
        this.requestFd = requestFd;
        this.answerFd = answerFd;
    }

    /**
     * Starts the agent in the worker, which must be stopped at its entry point (it has run no code of its own, so
     * {@code pthread_create} cannot find a lock taken).
     *
     * @param agentEntry    run-time address of {@code hpvm_agent} in the worker
     * @param pthreadCreate run-time address of the worker's {@code pthread_create}
     * @param lowestFd      the lowest descriptor number the worker's ends of the pipes may take
     */
    public static WorkerAgent start(Injector inj, ProcessMemory mem, int pid, long agentEntry, long pthreadCreate,
                                    long lowestFd) throws SystemException {
        int[] request = pipe(inj, mem, lowestFd);   // [agent reads, supervisor writes]
        int[] answer = pipe(inj, mem, lowestFd);    // [supervisor reads, agent writes]
        int ours = -1;
        int theirs = -1;
        try {
            ours = open(pid, request[1], LibC.O_WRONLY);
            theirs = open(pid, answer[0], LibC.O_RDONLY | LibC.O_NONBLOCK);
            inj.syscall(Injector.SYS_CLOSE, request[1]);
            inj.syscall(Injector.SYS_CLOSE, answer[0]);
            long threadOut = inj.scratchMemory(3);
            long rc = inj.call(pthreadCreate, threadOut, 0, agentEntry, request[0] | ((long) answer[1] << 32));
            if (rc != 0) {
                throw SystemException.of("pthread_create of hpvm's agent thread in the worker", (int) rc);
            }
            return new WorkerAgent(pid, newThread(pid), ours, theirs);
        } catch (SystemException | RuntimeException e) {
            closeQuietly(ours);
            closeQuietly(theirs);
            inj.syscall(Injector.SYS_CLOSE, request[0]);
            inj.syscall(Injector.SYS_CLOSE, answer[1]);
            throw e;
        }
    }

    /** A pipe made by the worker, both ends moved to close-on-exec descriptors at or above {@code lowest}. */
    private static int[] pipe(Injector inj, ProcessMemory mem, long lowest) throws SystemException {
        long at = inj.scratchMemory(2);
        long rc = inj.syscall(Injector.SYS_PIPE2, at, LibC.O_CLOEXEC);
        if (rc < 0) {
            throw SystemException.of("pipe2 in the worker (for hpvm's agent thread)", (int) -rc);
        }
        ByteBuffer b = ByteBuffer.wrap(mem.read(at, 8)).order(ByteOrder.LITTLE_ENDIAN);
        int[] fds = {b.getInt(0), b.getInt(4)};
        for (int i = 0; i < 2; i++) {
            long high = inj.syscall(Injector.SYS_FCNTL, fds[i], Injector.F_DUPFD_CLOEXEC, lowest);
            if (high >= 0) {
                inj.syscall(Injector.SYS_CLOSE, fds[i]);
                fds[i] = (int) high;
            }
        }
        return fds;
    }

    private static int open(int pid, int fd, int flags) throws SystemException {
        try {
            return LibC.INSTANCE.open("/proc/" + pid + "/fd/" + fd, flags | LibC.O_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw SystemException.of("open /proc/" + pid + "/fd/" + fd + " (a pipe to hpvm's agent thread)",
                e.getErrorCode());
        }
    }

    /** The worker's one thread besides the main thread, right after the agent was created at the entry point. */
    private static int newThread(int pid) throws SystemException {
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path task : tasks.toList()) {
                int tid = Integer.parseInt(task.getFileName().toString());
                if (tid != pid) {
                    return tid;
                }
            }
        } catch (IOException e) {
            throw SystemException.io("list the threads of worker " + pid, e);
        }
        throw new SystemException("pthread_create returned 0 but worker " + pid + " has no second thread");
    }

    public int tid() {
        return tid;
    }

    /**
     * True while the agent thread exists (a program may close its descriptor, or end the thread by accident): an
     * ended thread other than the main one is reaped at once, so its task directory goes with it.
     */
    public boolean alive() {
        return Files.exists(Path.of("/proc/" + pid + "/task/" + tid));
    }

    /** Calls {@code function(args...)} (up to six integer arguments) on the agent thread; returns its rax. */
    public long call(long function, long timeoutMs, long... args) throws SystemException {
        return request(0, function, timeoutMs, "call of 0x" + Long.toHexString(function), args);
    }

    /** Runs system call {@code nr} (up to six arguments) on the agent thread; returns rax (-errno on failure). */
    public long syscall(int nr, long timeoutMs, long... args) throws SystemException {
        return request(1, nr, timeoutMs, "system call " + nr, args);
    }

    private long request(long kind, long target, long timeoutMs, String what, long... args) throws SystemException {
        if (args.length > 6) {
            throw new IllegalArgumentException("at most six arguments");
        }
        long seq = ++sequence;
        ByteBuffer req = ByteBuffer.allocate(REQUEST).order(ByteOrder.LITTLE_ENDIAN);
        req.putLong(seq).putLong(kind).putLong(target);
        for (long a : args) {
            req.putLong(a);
        }
        try {
            if (LibC.INSTANCE.write(requestFd, req.array(), REQUEST) != REQUEST) {
                throw new SystemException("short write to hpvm's agent thread " + tid + " of worker " + pid);
            }
        } catch (LastErrorException e) {
            throw SystemException.of("hpvm's agent thread " + tid + " of worker " + pid + " is gone (write of a "
                + "request)", e.getErrorCode());
        }
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        byte[] answer = new byte[ANSWER];
        int have = 0;
        try (Memory pfd = new Memory(8)) {
            while (true) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                if (left <= 0) {
                    throw new SystemException("the " + what + " on hpvm's agent thread " + tid + " of worker " + pid
                        + " did not return within " + timeoutMs + " ms (most likely waiting for a lock a program "
                        + "thread holds; it finishes when the lock is free)");
                }
                pfd.clear();
                pfd.setInt(0, answerFd);
                pfd.setShort(4, POLLIN);
                if (pollQuietly(pfd, left) == 0) {
                    if (!alive()) {
                        throw new SystemException("hpvm's agent thread " + tid + " of worker " + pid + " ended");
                    }
                    continue;
                }
                byte[] chunk = new byte[ANSWER - have];
                long n;
                try {
                    n = LibC.INSTANCE.read(answerFd, chunk, chunk.length);
                } catch (LastErrorException e) {
                    if (e.getErrorCode() == EINTR || e.getErrorCode() == EAGAIN) {
                        continue;
                    }
                    throw SystemException.of("read of an answer from hpvm's agent thread " + tid, e.getErrorCode());
                }
                if (n == 0) {
                    throw new SystemException("hpvm's agent thread " + tid + " of worker " + pid + " ended (its "
                        + "answer pipe was closed)");
                }
                System.arraycopy(chunk, 0, answer, have, (int) n);
                have += (int) n;
                if (have == ANSWER) {
                    ByteBuffer a = ByteBuffer.wrap(answer).order(ByteOrder.LITTLE_ENDIAN);
                    if (a.getLong(0) == seq) {
                        return a.getLong(8);
                    }
                    have = 0; // the late answer to a request given up on
                }
            }
        }
    }

    /** poll(2) for at most {@code ms} (and 100 ms at a time, to notice a thread that ended); 1 when interrupted. */
    private static int pollQuietly(Memory pfd, long ms) {
        try {
            return LibC.INSTANCE.poll(pfd, 1, (int) Math.min(ms, 100));
        } catch (LastErrorException e) {
            return 1; // EINTR: the read below says what there is
        }
    }

    private static void closeQuietly(int fd) {
        if (fd >= 0) {
            LibC.INSTANCE.close(fd);
        }
    }

    @Override
    public void close() {
        closeQuietly(requestFd);
        closeQuietly(answerFd);
    }
}
