package io.hpvm.runtime.supervisor;

import io.hpvm.asm.Decoder;
import io.hpvm.asm.Snippets;
import io.hpvm.loader.Elf;
import io.hpvm.loader.DebugFiles;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LoadException;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.Timings;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.Spawner;
import io.hpvm.runtime.linux.SignalForwarder;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionRoot;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * {@code hpvm run}: starts the worker stopped at its entry point, maps the slot table and code region into it,
 * writes a stub per patchable function, rewrites every proven direct call/jmp/jcc to a patchable entry so it goes
 * through the stub, detaches, then stays as the worker's parent: forwards signals, removes the session when the
 * worker ends, and exits with the worker's status.
 */
public final class Supervisor {


    /**
     * Options of {@code hpvm run}.
     *
     * @param json     print the ready line as a JSON object
     * @param agent    start hpvm's agent thread in a worker that has an unwinder ({@link AgentLaunch})
     * @param commands runs the commands thin clients send (null: requests for commands are answered "not here")
     * @param debugFile the program's separate debug file ({@code --debug-file}), or null: searched for
     */
    public record Options(boolean quiet, long arenaSize, boolean timings, boolean redirectEntries, String cflags,
                          boolean agent, boolean json, CommandRunner commands, long autoCompactMillis,
                          Path debugFile) {
    }

    private final Options options;
    private final PrintStream err;

    public Supervisor(Options options, PrintStream err) {
        this.options = options;
        this.err = err;
    }

    /** Runs the worker to completion; returns the exit status to exit with. */
    public int run(List<String> argv) throws HpvmException {
        return serve(launch(argv));
    }

    /**
     * {@code hpvm attach}: takes over running process {@code pid} (with {@code children}, its forked copies too:
     * {@link Attach}), runs {@code attached} (the
     * command moves its output to the session's log then), serves the session until the process ends, removes it.
     *
     * @return 0 (the process's exit status goes to its parent)
     */
    public int attach(int pid, boolean children, Runnable attached) throws HpvmException {
        Launched worker = new Attach(options, err).attach(pid, children);
        attached.run();
        serve(worker);
        err.println(worker.server().detached() ? "hpvm: detached from process " + pid + "; its session is removed"
            : "hpvm: process " + pid + " ended; its session is removed (its exit status went to its parent)");
        return 0;
    }

    private int serve(Launched worker) throws HpvmException {
        Thread warmUp = warmUpCommands(worker.session());
        int status;
        try (ControlServer control = worker.server()) {
            status = control.serveUntilExit();
        }
        // A warm-up still opening the registry would make Chronicle create it again in the directory being removed
        // (a worker that ends within a second of its launch: ExitAndSignalsTest once left its session behind).
        try {
            if (warmUp != null) {
                warmUp.join(10_000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        worker.session().delete();
        return status;
    }

    /**
     * What outlives the launch: the session and its control server. Everything else launch built (the program's ELF
     * image, its text, the call-site and branch-target tables: tens of megabytes for a large program) becomes
     * garbage when {@link #launch} returns, which a frame that stayed on the stack for the worker's lifetime would
     * have kept alive.
     */
    record Launched(SessionDir session, ControlServer server) {
    }

    /** Starts the worker, rewrites it, releases it, writes the registry and prints the ready line. */
    private Launched launch(List<String> argv) throws HpvmException {
        long t0 = System.nanoTime();
        Timings timings = new Timings();
        CompletableFuture<Void> warm = CompletableFuture.runAsync(Registry::warmUp);
        Thread machineCode = new Thread(Supervisor::warmUpMachineCode, "hpvm-warm-up-code");
        machineCode.setDaemon(true);
        machineCode.start();
        Path program = resolveProgram(argv.get(0));
        ElfImage image;
        String symbols;
        try {
            DebugFiles.Found found = DebugFiles.find(ElfImage.read(program), options.debugFile(), System::getenv);
            image = found.image();
            symbols = found.remark();
        } catch (LoadException e) {
            throw ExitCode.wrap(e);
        }
        if (image.entry() == 0 || image.type() == Elf.ET_DYN && !image.hasInterpreter()
            && image.programHeaderAddress() < 0) {
            throw new HpvmException(ExitCode.BAD_FILE, program + " is a shared library, not an executable");
        }
        List<PatchableFunctions.Function> functions = PatchableFunctions.of(image);
        timings.mark("elf");
        SessionRoot.get(); // a root that is not safe to use stops us before the program starts
        List<String> workerArgv = new ArrayList<>(argv);
        workerArgv.set(0, argv.get(0).contains("/") ? argv.get(0) : program.toString());

        SignalForwarder forwarder = SignalForwarder.install();
        int pid = Spawner.spawnStopped(workerArgv);
        forwarder.forwardTo(pid);
        SessionDir session = null;
        SessionDir.Lock lock = null;
        Instrumentation.Setup setup;
        Instrumentation instrumentation = new Instrumentation(options, true);
        ControlServer server = null;
        String unnamed = null;
        CompletableFuture<Registry> registry = null;
        try {
            Tracee tracee = Spawner.runToEntry(pid, program.toString());
            timings.mark("spawn");
            session = SessionDir.create(pid);
            lock = session.lock();
            // The registry is made beside the ptrace work (Chronicle Map takes a while to start in a new JVM) and
            // filled while the worker already runs, under the session lock and before the ready line: a command
            // waits for the lock (slow path) or for the supervisor to serve (thin client), so the session is usable
            // by every command from the moment it is announced, and the program does not wait for Chronicle.
            SessionDir s0 = session;
            registry = warm.thenApply(v -> Instrumentation.createRegistry(s0, functions.size()));
            setup = instrumentation.prepare(pid, () -> List.of(tracee), image, functions, session, timings);
            server = new ControlServer(session, pid, setup.callPad, setup.agent == null ? null : setup.agent.agent(),
                options.commands(), options.autoCompactMillis() > 0
                    ? new AutoCompaction(session, options.autoCompactMillis(), err) : null);
            tracee.detach();
            timings.mark("detach");
            instrumentation.writeRegistry(HpvmException.join(registry), session, setup, functions, program,
                image);
            timings.mark("registry");
            lock.close();
            unnamed = server.nameCode(true); // opening the registry takes the session lock
        } catch (HpvmException | RuntimeException e) {
            killQuietly(pid);
            if (server != null) {
                server.close();
            }
            if (registry != null) {
                registry.thenAccept(Registry::close).exceptionally(x -> null).join(); // before its file is removed
            }
            if (lock != null) {
                lock.close();
            }
            if (session != null) {
                session.delete();
            }
            throw e;
        }
        long readyMs = sinceProcessStart(t0);
        if (options.json()) {
            err.println(new io.hpvm.runtime.Json().put("event", "ready").put("program", argv.get(0))
                .put("pid", pid).put("ready_ms", readyMs).put("functions", functions.size())
                .put("call_sites", setup.callSites).put("entries_redirected", setup.trampolineOf.size())
                .put("session", session.dir().toString()).put("code_fd", setup.codeFd < 0 ? null : setup.codeFd)
                .put("code_region", setup.codeNotShared == null ? "sysv" : setup.codeFd < 0 ? "file" : "memfd")
                .put("gdb_jit", setup.notDebuggable == null)
                .put("agent_thread", setup.agent == null || setup.agent.agent() == null ? null
                    : setup.agent.agent().tid())
                .put("symbols", image.symbolFile() == null ? null : image.symbolFile().toString()));
        } else if (!options.quiet()) {
            err.printf("hpvm: %s (pid %d) ready in %d ms: %d functions patchable, %d call sites rewritten, %d entries "
                    + "redirected; session %s%s%s%s%n", argv.get(0), pid, readyMs, functions.size(), setup.callSites,
                setup.trampolineOf.size(), session.dir(), codeRegionRemark(setup),
                setup.agent == null || setup.agent.agent() == null ? ""
                    : "; agent thread " + setup.agent.agent().tid() + " (hpvm-agent)",
                symbols);
        }
        if (unnamed != null) {
            err.println("hpvm: warning: " + unnamed + " (perf will not name hpvm's code)");
        }
        if (setup.notDebuggable != null && !options.quiet() && !options.json()) {
            err.println("hpvm: note: gdb will not name patched code: " + setup.notDebuggable);
        }
        if (setup.agent != null && setup.agent.notStarted() != null) {
            err.println("hpvm: warning: hpvm's agent thread was not started (" + setup.agent.notStarted() + "); "
                + "registering a patch's unwind information will pause one thread of the worker briefly instead");
        }
        if (server.unavailable() != null) {
            err.println("hpvm: warning: no control socket (" + server.unavailable() + "); swaps work, but unwind "
                + "information for C++ exceptions cannot be registered");
        }
        if (options.timings()) {
            err.printf("hpvm: timings: %s; text scanned %d bytes in %.2f ms (%.1f MB/s)%n", timings.describe(),
                setup.bytesScanned, timings.micros().getOrDefault("decode", 0L) / 1000.0,
                setup.bytesScanned / Math.max(1.0, timings.micros().getOrDefault("decode", 1L)));
        }
        return new Launched(session, server);
    }

    /**
     * Milliseconds since this process began (bin/hpvm execs java in place, so the JVM's start counts too): its
     * start time in /proc/self/stat is in clock ticks (100 per second) since boot, the clock System.nanoTime reads
     * on Linux. Falls back to the time since {@code t0} (Supervisor.run) when that reading is not plausible.
     */
    /**
     * What the ready line says of the code region: nothing when it is a System V segment (the usual case), else what
     * it is instead and what that costs (perf cannot name hpvm's code in a file mapping).
     */
    private static String codeRegionRemark(Instrumentation.Setup setup) {
        if (setup.codeNotShared == null) {
            return "";
        }
        return " (code region: " + (setup.codeFd < 0 ? "a file" : "a memfd, descriptor " + setup.codeFd
            + " of the worker, as the session root is noexec") + ", not System V shared memory: "
            + setup.codeNotShared + "; perf will not name hpvm's code)";
    }

    private static long sinceProcessStart(long t0) {
        long sinceRun = (System.nanoTime() - t0) / 1_000_000;
        long ticks = ProcFs.startTime((int) ProcessHandle.current().pid());
        long since = ticks < 0 ? -1 : System.nanoTime() / 1_000_000 - ticks * 10;
        return since >= sinceRun && since < sinceRun + 60_000 ? since : sinceRun;
    }

    /**
     * Loads and initialises what the rewrite needs, beside reading the ELF file and spawning (the main thread mostly
     * waits for the worker then): the snippets (five objects parsed, the linker's first run: 60-70 ms cold) and
     * Capstone through JNA (the library loaded, both decoder modes opened).
     */
    private static void warmUpMachineCode() {
        try {
            Snippets.stub(0x10000, 0x20000);
            try (Decoder plain = new Decoder(); Decoder detail = new Decoder(true)) {
                plain.decode(new byte[] {(byte) 0xc3}, 0x10000, insn -> true);
                detail.decode(new byte[] {(byte) 0xc3}, 0x10000, insn -> true);
            }
        } catch (LoadException | RuntimeException ignored) {
            // only a warm-up: the launch reports its own errors
        }
    }

    /** Classes of the swap path, loaded before the first swap asks for them. */
    private static final List<String> SWAP_PATH = List.of("io.hpvm.runtime.swap.SwapEngine",
        "io.hpvm.runtime.swap.SwapPasses", "io.hpvm.runtime.swap.WorkerSymbols", "io.hpvm.loader.Linker",
        "io.hpvm.loader.LinkChecks", "io.hpvm.loader.RelocatableObject", "io.hpvm.loader.ImageDiff",
        "io.hpvm.loader.DwarfInlines", "io.hpvm.loader.UnwindInfo", "io.hpvm.asm.ClobberAnalysis");

    /**
     * Runs {@code hpvm ls} once on a background thread and loads the swap path's classes, so that the first command
     * a user sends finds them loaded and compiled (it would otherwise pay half a second for it), and so that they
     * are read from the jar now rather than whenever the first swap comes.
     */
    private Thread warmUpCommands(SessionDir session) {
        CommandRunner commands = options.commands();
        if (commands == null) {
            return null;
        }
        Thread t = new Thread(() -> {
            try {
                commands.run(new io.hpvm.runtime.session.CommandRequest(Path.of("/"), Map.of(), List.of("ls")),
                    session, (s, fn, tables) -> {
                        throw new SystemException("not during the warm-up");
                    });
                for (String c : SWAP_PATH) {
                    Class.forName(c, false, Supervisor.class.getClassLoader());
                }
                // Launch garbage (the program's ELF image, its text, the call-site tables) is dead now: a full
                // collection lets the heap shrink to what the session keeps (bin/hpvm bounds the free ratio), so
                // the supervisor idles at its live size rather than at launch's high-water mark.
                System.gc();
                // Last, after the collection: a compaction or quiesce right after launch finds the launch garbage
                // gone (a full collection inside its stop of the world made the Lua compaction pause 6 ms, not 2).
                io.hpvm.runtime.swap.StackWalk.warmUp(session.pid());
            } catch (ClassNotFoundException | RuntimeException ignored) {
                // only a warm-up
            }
        }, "hpvm-warm-up");
        t.setDaemon(true);
        t.setPriority(Thread.MIN_PRIORITY);
        t.start();
        return t;
    }

    private static Path resolveProgram(String name) throws HpvmException {
        Path p;
        if (name.contains("/")) {
            p = Path.of(name);
        } else {
            p = null;
            for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
                Path c = Path.of(dir.isEmpty() ? "." : dir, name);
                if (Files.isRegularFile(c) && Files.isExecutable(c)) {
                    p = c;
                    break;
                }
            }
            if (p == null) {
                throw new HpvmException(ExitCode.BAD_FILE, name + ": no such executable (not found in PATH)");
            }
        }
        if (!Files.exists(p)) {
            throw new HpvmException(ExitCode.BAD_FILE, p + ": no such file");
        }
        if (!Files.isRegularFile(p) || !Files.isExecutable(p)) {
            throw new HpvmException(ExitCode.BAD_FILE, p + ": not an executable file");
        }
        return p;
    }

    private static void killQuietly(int pid) {
        try {
            LibC.INSTANCE.kill(pid, LibC.SIGKILL);
            LibC.INSTANCE.waitpid(pid, new com.sun.jna.ptr.IntByReference(), 0);
        } catch (RuntimeException ignored) {
            // already gone
        }
    }
}
