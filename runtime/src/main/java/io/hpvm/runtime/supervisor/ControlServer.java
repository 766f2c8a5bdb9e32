package io.hpvm.runtime.supervisor;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import io.hpvm.loader.JitDebugLibrary;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.RemoteThread;
import io.hpvm.runtime.linux.WorkerAgent;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.WaitStatus;
import io.hpvm.runtime.profile.PerfMap;
import io.hpvm.runtime.session.CommandRequest;
import io.hpvm.runtime.session.ControlClient;
import io.hpvm.runtime.session.SessionDir;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;

/**
 * The supervisor's life after the worker starts: wait for the worker to exit, and meanwhile answer the requests
 * other hpvm commands send on {@code SESSION/control} ({@link ControlClient}) for what needs the supervisor's ptrace
 * rights. Everything runs on the supervisor's main thread, the only one allowed to trace the worker: a small daemon
 * thread only watches a pidfd and wakes the selector when the worker exits.
 */
final class ControlServer implements AutoCloseable {

    private static final int SYS_PIDFD_OPEN = 434;
    private static final int SYS_MMAP = 9;
    private static final int ECHILD = 10;
    private static final int OBJECT_SIZE = 128;        // >= libgcc's struct object (56 bytes in GCC 12-14)
    private static final int OBJECT_PAGE = 16384;
    /** How long a registration may take before it is abandoned. */
    private static final long CALL_TIMEOUT_MS = 2000;

    private final SessionDir session;
    private final CommandRunner runner;
    /** {@code --compact=auto}, or null. */
    private final AutoCompaction auto;
    private final int pid;
    private final long pad;
    /** hpvm's agent thread in the worker (not in its forked children), or null. */
    private final WorkerAgent agent;
    private final ServerSocketChannel server;
    private final Selector selector;
    private volatile boolean exited;
    /** A {@code hpvm detach} went through: stop serving. */
    private boolean detached;
    /** The worker's exit status when a request's wait consumed it. */
    private WaitStatus workerStatus;
    private String unavailable;
    private boolean exitWatched;
    /** Per process: where its next {@code struct object} goes, and how many are left in its page. */
    private final java.util.Map<Integer, long[]> objects = new java.util.HashMap<>();
    /** The commands that may add code to the arena: perf's map is brought up to date after them. */
    private static final java.util.Set<String> ADDS_CODE = java.util.Set.of("swap", "patch", "rollback");
    /** The last JIT entry a tracing gdb was told of ({@link #tellDebugger}). */
    private long toldEntry;
    /** Names hpvm's code for perf; a command that adds code (a swap, say) adds its lines. */
    private PerfMap perfMap;

    /**
     * @param pad hpvm's call pad in the worker ({@code int3} at +0, {@code syscall; int3} at +8), see
     *            {@link RemoteThread}
     */
    ControlServer(SessionDir session, int pid, long pad, WorkerAgent agent, CommandRunner runner,
                  AutoCompaction auto) throws SystemException {
        this.session = session;
        this.auto = auto;
        this.pid = pid;
        this.pad = pad;
        this.agent = agent;
        this.runner = runner;
        try {
            selector = Selector.open();
        } catch (IOException e) {
            throw new SystemException("cannot open a selector: " + e.getMessage(), e);
        }
        ServerSocketChannel listening = null;
        try {
            Files.deleteIfExists(session.control());
            listening = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            listening.bind(UnixDomainSocketAddress.of(session.control()));
            SessionDir.makePrivate(session.control());
            listening.configureBlocking(false);
            listening.register(selector, SelectionKey.OP_ACCEPT);
        } catch (IOException | RuntimeException e) {
            // For example a session root so deep that the socket path passes the 107-byte limit. The worker still
            // runs and plain swaps work; requests (unwind registration) fail with this reason.
            unavailable = session.workerPath("control") + ": " + e.getMessage();
            try {
                if (listening != null) {
                    listening.close();
                }
            } catch (IOException ignored) {
                // nothing more to release
            }
            listening = null;
        }
        server = listening;
    }

    /**
     * Starts naming the session's code for perf ({@link PerfMap}), once its registry is written; {@code started}
     * when hpvm started the process. Returns why the map cannot be written, or null.
     */
    String nameCode(boolean started) {
        perfMap = new PerfMap(pid, started);
        return perfMap.update(session);
    }

    /**
     * A gdb attached to the worker learns of a patch listed in its JIT interface ({@code swap/DebuggerRegistration})
     * when a thread calls {@code __jit_debug_register_code}, where it keeps a breakpoint: hpvm's agent thread calls
     * it (no thread of the program is borrowed, and the supervisor cannot trace a process gdb traces). Once per new
     * entry; returns why gdb could not be told, or null.
     */
    private String tellDebugger() {
        try {
            long descriptor = session.debugger();
            String tracer = ProcFs.status(pid, "TracerPid");
            if (descriptor < 0 || tracer == null || tracer.equals("0")) {
                return null;
            }
            long entry;
            try (io.hpvm.runtime.linux.ProcessMemory mem = new io.hpvm.runtime.linux.ProcessMemory(pid, false)) {
                entry = ByteBuffer.wrap(mem.read(descriptor + JitDebugLibrary.RELEVANT_ENTRY, 8))
                    .order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
            }
            if (entry == 0 || entry == toldEntry) {
                return null;
            }
            String later = "process " + tracer + " (gdb?) traces the worker and learns of the new code when it "
                + "attaches again";
            if (agent == null || !agent.alive()) {
                return later + " (no hpvm agent thread to tell it now)";
            }
            agent.call(descriptor - JitDebugLibrary.DESCRIPTOR + JitDebugLibrary.REGISTER_CODE, 1000);
            toldEntry = entry;
            return null;
        } catch (SystemException e) {
            return "gdb could not be told of the new code now (" + e.getMessage() + "); it learns of it when it "
                + "attaches again";
        }
    }

    /** Whether serving ended because {@code hpvm detach} went through (not because the process ended). */
    boolean detached() {
        return detached;
    }

    /** Why requests cannot be served (the socket could not be made), or null. */
    String unavailable() {
        return unavailable;
    }

    /** Serves requests until the worker exits; returns its exit status as a shell reports it (128+N if killed). */
    int serveUntilExit() throws SystemException {
        watchExit();
        while (true) {
            if (detached) {
                return 0;
            }
            Integer status = reap();
            if (status != null) {
                return status;
            }
            if (auto != null) {
                auto.tick();
            }
            long wait = exitWatched ? 0 : 100;
            if (auto != null) {
                wait = wait == 0 ? auto.waitMillis() : Math.min(wait, auto.waitMillis());
            }
            try {
                selector.select(wait);
            } catch (IOException e) {
                throw new SystemException("control socket: " + e.getMessage(), e);
            }
            for (var it = selector.selectedKeys().iterator(); it.hasNext(); ) {
                it.next();
                it.remove();
                try (SocketChannel ch = server.accept()) {
                    if (ch != null) {
                        answer(ch);
                    }
                } catch (IOException e) {
                    // the client went away; nothing to answer
                }
            }
        }
    }

    /** The worker's exit status once it has exited (reaping it), else null. */
    private Integer reap() throws SystemException {
        if (workerStatus == null) {
            workerStatus = io.hpvm.runtime.linux.WorldStop.takeReaped(pid); // it ended during a stop of the world
        }
        if (workerStatus != null) {
            return workerStatus.shellStatus(); // reaped by a borrowed-thread wait on the main thread
        }
        com.sun.jna.ptr.IntByReference status = new com.sun.jna.ptr.IntByReference();
        try {
            int got = LibC.INSTANCE.waitpid(pid, status, LibC.WNOHANG);
            if (got == pid) {
                WaitStatus st = new WaitStatus(status.getValue());
                if (st.exited() || !st.stopped()) {
                    return st.shellStatus();
                }
            }
            return null;
        } catch (LastErrorException e) {
            if (e.getErrorCode() == 4) {
                return null;
            }
            if (e.getErrorCode() == ECHILD) {
                // Attached (hpvm attach): not our child, so no status; the pidfd says when it has ended, or, on a
                // kernel without pidfds, /proc (a zombie waiting for its parent counts as ended).
                boolean ended = exitWatched ? exited : ProcFs.state(pid) == 'Z' || ProcFs.state(pid) == '?';
                return ended ? 0 : null;
            }
            throw SystemException.of("waitpid(" + pid + ")", e.getErrorCode());
        }
    }

    /** A daemon thread that polls a pidfd (which reaps nothing) and wakes the selector when the worker exits. */
    private void watchExit() {
        long fd;
        try {
            fd = LibC.INSTANCE.syscall(SYS_PIDFD_OPEN, pid, 0);
        } catch (LastErrorException e) {
            return; // kernel before 5.3: the loop polls every 100 ms instead
        }
        exitWatched = true;
        Thread t = new Thread(() -> {
            Memory pfd = new Memory(8);
            pfd.setInt(0, (int) fd);
            pfd.setShort(4, (short) 1); // POLLIN: the process has exited
            while (true) {
                try {
                    if (LibC.INSTANCE.poll(pfd, 1, -1) > 0) {
                        break;
                    }
                } catch (LastErrorException e) {
                    if (e.getErrorCode() != 4) {
                        break;
                    }
                }
            }
            exited = true;
            selector.wakeup();
        }, "hpvm-exit-watch");
        t.setDaemon(true);
        t.start();
    }

    private void answer(SocketChannel ch) throws IOException {
        // At most a few seconds for the request: a client that sends nothing must not stall the supervisor.
        byte[] raw = readRequest(ch, System.nanoTime() + 5_000_000_000L);
        if (startsWith(raw, raw.length, COMMAND)) {
            byte[] answer;
            try {
                CommandRequest request = CommandRequest.decode(raw);
                CommandRequest.Answer a = runner == null ? new CommandRequest.Answer(-1, "", "")
                    : runner.run(request, session, (s, fn, tables) -> registerUnwind(fn, tables));
                boolean added = a.exit() == 0 && ADDS_CODE.contains(request.args().isEmpty() ? ""
                    : request.args().get(0));
                for (String warning : added ? java.util.Arrays.asList(perfMap == null ? null
                    : perfMap.update(session), tellDebugger()) : List.<String>of()) {
                    if (warning != null) {
                        a = new CommandRequest.Answer(a.exit(), a.out(), a.err() + "hpvm: warning: " + warning + "\n");
                    }
                }
                // hpvm detach gave the process its own code back: the session ends once this answer is sent.
                detached = a.exit() == 0 && !request.args().isEmpty() && request.args().get(0).equals("detach");
                answer = a.encode();
            } catch (RuntimeException e) {
                answer = new CommandRequest.Answer(7, "", "hpvm: error: the supervisor could not run the request: "
                    + e + "\n").encode();
            }
            ch.configureBlocking(true);
            ByteBuffer out = ByteBuffer.wrap(answer);
            while (out.hasRemaining()) {
                ch.write(out);
            }
            return;
        }
        String request = new String(raw, StandardCharsets.UTF_8).trim();
        String reply;
        try {
            reply = "ok " + handle(request);
        } catch (SystemException | RuntimeException e) {
            reply = "error " + e.getMessage();
        }
        ch.configureBlocking(true);
        ch.write(ByteBuffer.wrap((reply.replace('\n', ' ') + "\n").getBytes(StandardCharsets.UTF_8)));
    }

    /**
     * A request: a single line (its verb is not {@code command}), or a command request, which the client ends by
     * half-closing its side. Read until either is complete, 1 MiB, or the deadline.
     */
    private static byte[] readRequest(SocketChannel ch, long deadline) throws IOException {
        return ControlClient.read(ch, CommandRequest.MAX_BYTES, deadline,
            (got, n) -> !startsWith(got, n, COMMAND) && indexOf(got, n, (byte) '\n') >= 0);
    }

    private static final byte[] COMMAND = (CommandRequest.VERB + "\n").getBytes(StandardCharsets.UTF_8);

    private static boolean startsWith(byte[] b, int length, byte[] prefix) {
        return length >= prefix.length && java.util.Arrays.equals(b, 0, prefix.length, prefix, 0, prefix.length);
    }

    private static int indexOf(byte[] b, int length, byte x) {
        for (int i = 0; i < length; i++) {
            if (b[i] == x) {
                return i;
            }
        }
        return -1;
    }

    private String handle(String request) throws SystemException {
        String[] w = request.split(" ");
        if (w.length >= 3 && w[0].equals(ControlClient.REGISTER_UNWIND)) {
            List<Long> tables = new java.util.ArrayList<>();
            for (int i = 2; i < w.length; i++) {
                tables.add(Long.parseUnsignedLong(w[i], 16));
            }
            return registerUnwind(Long.parseUnsignedLong(w[1], 16), tables);
        }
        throw new SystemException("unknown request '" + request + "'");
    }

    /**
     * Calls {@code __register_frame_info(ehFrame, object)} in the worker and in every child it forked that still
     * shares the session (their unwinders' lists are their own memory; children forked later inherit the
     * registration). The {@code struct object} libgcc keeps in its list comes from pages hpvm maps into each process,
     * so the call allocates nothing: a thread interrupted inside malloc cannot deadlock it. Registrations are never
     * undone: patch code is never freed.
     */
    private String registerUnwind(long function, List<Long> ehFrames) throws SystemException {
        long t0 = System.nanoTime();
        // The worker and the children it forked that still run the session's code.
        java.util.List<Integer> processes = new java.util.ArrayList<>(List.of(pid));
        for (int p : session.processes()) {
            if (p != pid) {
                processes.add(p);
            }
        }
        StringBuilder by = new StringBuilder();
        long longestPause = -1;
        for (int process : processes) {
            if (process == pid && agent != null && agent.alive()) {
                register(process, ehFrames, new InWorker() {
                    public long syscall(int nr, long... args) throws SystemException {
                        return agent.syscall(nr, CALL_TIMEOUT_MS, args);
                    }

                    public long call(long fn, long... args) throws SystemException {
                        return agent.call(fn, CALL_TIMEOUT_MS, args);
                    }
                }, function);
                by.append(by.length() == 0 ? "" : ", ").append("hpvm's agent thread ").append(agent.tid());
                continue;
            }
            RemoteThread borrowed = null;
            try (RemoteThread t = RemoteThread.attach(process, pad)) {
                borrowed = t;
                register(process, ehFrames, new InWorker() {
                    public long syscall(int nr, long... args) throws SystemException {
                        return t.syscall(nr, args);
                    }

                    public long call(long fn, long... args) throws SystemException {
                        return t.call(fn, CALL_TIMEOUT_MS, args);
                    }
                }, function);
                by.append(by.length() == 0 ? "" : ", ").append("borrowed thread ").append(t.tid());
            } catch (SystemException e) {
                borrowed = null;
                if (e instanceof RemoteThread.Gone gone && gone.tid() == pid) {
                    workerStatus = gone.status();
                }
                if (process == pid) {
                    throw e;
                }
                // a child that exited meanwhile has nothing left to unwind
                char state = io.hpvm.runtime.linux.ProcFs.state(process);
                if (state != '?' && state != 'Z' && state != 'X') {
                    throw new SystemException("process " + process + " (forked by the worker): " + e.getMessage(), e);
                }
            }
            if (borrowed != null) {
                longestPause = Math.max(longestPause, borrowed.pausedMicros());
            }
        }
        return "registered by " + by + " in " + (System.nanoTime() - t0) / 1000 + " us (" + (longestPause < 0
            ? "no worker thread paused)" : "longest pause of a worker thread: " + longestPause + " us)");
    }

    /** Where the calls of one registration run: hpvm's agent thread, or a borrowed thread of the program. */
    private interface InWorker {
        long syscall(int nr, long... args) throws SystemException;

        long call(long function, long... args) throws SystemException;
    }

    /** Registers each table in {@code process}, its {@code struct object}s taken from a page of that process's. */
    private void register(int process, List<Long> ehFrames, InWorker in, long function) throws SystemException {
        long[] pool = objects.computeIfAbsent(process, k -> new long[2]); // {next, left}
        for (long ehFrame : ehFrames) {
            if (pool[1] == 0) {
                long page = in.syscall(SYS_MMAP, 0, OBJECT_PAGE, 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
                if (page < 0 && page > -4096) {
                    throw SystemException.of("mmap in process " + process + " for unwind registrations",
                        (int) -page);
                }
                pool[0] = page;
                pool[1] = OBJECT_PAGE / OBJECT_SIZE;
            }
            in.call(function, ehFrame, pool[0]);
            pool[0] += OBJECT_SIZE;
            pool[1]--;
        }
    }

    @Override
    public void close() {
        if (auto != null) {
            auto.close();
        }
        if (agent != null) {
            agent.close();
        }
        try {
            selector.close();
            if (server != null) {
                server.close();
            }
            Files.deleteIfExists(session.control());
        } catch (IOException | SystemException e) {
            // the session directory goes away anyway
        }
    }
}
