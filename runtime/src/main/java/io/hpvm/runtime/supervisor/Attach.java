package io.hpvm.runtime.supervisor;

import io.hpvm.loader.DebugFiles;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LoadException;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.Json;
import io.hpvm.runtime.Timings;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.PtraceAccess;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.linux.WorldStop;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.swap.DisplacedEntry;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * {@code hpvm attach PID}: does to a process that is already running what {@code hpvm run} does to one it starts.
 * Everything that only reads the process (its executable, which functions are patchable) happens while it runs;
 * then every thread is stopped through ptrace ({@link WorldStop}), the regions are mapped in with system calls run
 * in one of the stopped threads, stubs, call sites and entries are written exactly as at launch
 * ({@link Instrumentation}), a thread stopped among the first instructions of an entry being redirected is moved to
 * their copy in the trampoline ({@link DisplacedEntry}), and every thread resumes.
 *
 * <p>What differs from {@code hpvm run}: the supervisor is not the process's parent, so it cannot forward signals
 * or learn its exit status (the parent gets it; the supervisor only sees that it ended), and hpvm's agent thread is
 * not started (starting a thread means calling {@code pthread_create} in a process stopped at an arbitrary point,
 * perhaps inside malloc): registering a patch's unwind information borrows a waiting thread instead.
 */
final class Attach {

    private final Supervisor.Options options;
    private final PrintStream err;

    Attach(Supervisor.Options options, PrintStream err) {
        this.options = options;
        this.err = err;
    }

    /**
     * Takes over {@code pid}, and with {@code children} every process descended from it that runs the same
     * executable at the same address (a pre-forked server's workers), all as one session, as {@code hpvm run}'s
     * forked children share theirs.
     */
    Supervisor.Launched attach(int pid, boolean children) throws HpvmException {
        long t0 = System.nanoTime();
        Timings timings = new Timings();
        CompletableFuture<Void> warm = CompletableFuture.runAsync(Registry::warmUp);
        String refused = PtraceAccess.refusal(pid); // first: another user's /proc/PID/exe is not ours to read
        if (refused != null) {
            throw new HpvmException(ExitCode.SYSTEM, "cannot attach to process " + pid + ": " + refused);
        }
        Path program = program(pid);
        List<Integer> pids = children ? copies(pid, program) : List.of(pid);
        for (int p : pids) {
            String refusal = p == pid ? null : PtraceAccess.refusal(p);
            if (refusal != null) {
                throw new HpvmException(ExitCode.SYSTEM, "cannot attach to process " + p + ": " + refusal);
            }
        }
        for (SessionDir s : SessionDir.list()) {
            if (s.isLive()) {
                for (int p : s.processes()) {
                    if (pids.contains(p)) {
                        throw new HpvmException(ExitCode.REFUSED, "process " + p + " is already under hpvm (session "
                            + s.dir() + ")");
                    }
                }
            }
        }
        ElfImage image;
        String symbols;
        try {
            // Read through /proc, which works when the file was replaced or deleted since the process started.
            DebugFiles.Found found = DebugFiles.find(ElfImage.read(Path.of("/proc/" + pid + "/exe")),
                options.debugFile(), System::getenv);
            image = found.image();
            symbols = found.remark();
        } catch (LoadException e) {
            throw ExitCode.wrap(new LoadException(e.kind(), program + " (the executable of process " + pid + "): "
                + e.getMessage()));
        }
        List<PatchableFunctions.Function> functions = PatchableFunctions.of(image);
        timings.mark("elf");
        Instrumentation instrumentation = new Instrumentation(options, false);
        SessionDir session = SessionDir.create(pid);
        SessionDir.Lock lock = null;
        ControlServer server = null;
        String unnamed = null;
        CompletableFuture<Registry> registry = null;
        Instrumentation.Setup setup;
        int processes;
        long paused;
        int threads;
        int moved = 0;
        try {
            lock = session.lock();
            registry = warm.thenApply(v -> Instrumentation.createRegistry(session, functions.size()));
            WorldStop[] world = new WorldStop[1];
            try {
                setup = instrumentation.prepare(pid, () -> {
                    world[0] = WorldStop.stop(pids);
                    List<Tracee> tracees = new ArrayList<>();
                    for (int p : pids) {
                        Tracee t = world[0].traceeOf(p);
                        if (t == null && p == pid) {
                            throw new HpvmException(ExitCode.SYSTEM, "process " + pid + " ended before hpvm could "
                                + "stop it");
                        }
                        if (t != null) {
                            tracees.add(t); // a child that ended meanwhile is left out
                        }
                    }
                    return tracees;
                }, image, functions, session, timings);
                processes = (int) world[0].threads().stream().mapToInt(WorldStop.StoppedThread::pid).distinct()
                    .count();
                threads = world[0].threads().size();
                moved = moveOutOfEntries(world[0], world[0].threads(), setup, functions);
            } finally {
                if (world[0] != null) {
                    world[0].close();
                }
            }
            paused = world[0].micros();
            timings.mark("resume");
            server = new ControlServer(session, pid, setup.callPad, null, options.commands(),
                options.autoCompactMillis() > 0 ? new AutoCompaction(session, options.autoCompactMillis(), err) : null);
            setup.attached = true;
            instrumentation.writeRegistry(HpvmException.join(registry), session, setup, functions, program,
                image);
            timings.mark("registry");
            lock.close();
            unnamed = server.nameCode(false); // opening the registry takes the session lock
        } catch (HpvmException | RuntimeException e) {
            if (server != null) {
                server.close();
            }
            if (registry != null) {
                registry.thenAccept(Registry::close).exceptionally(x -> null).join();
            }
            if (lock != null) {
                lock.close();
            }
            session.delete();
            throw e;
        }
        report(pid, program, functions.size(), setup, threads, processes, moved, paused,
            (System.nanoTime() - t0) / 1_000_000, session, timings, symbols, image.symbolFile());
        if (unnamed != null) {
            err.println("hpvm: warning: " + unnamed + " (perf will not name hpvm's code)");
        }
        return new Supervisor.Launched(session, server);
    }

    /** The executable's path as the process sees it ({@code /proc/PID/exe}; may end in " (deleted)"). */
    private static Path program(int pid) throws HpvmException {
        try {
            return Files.readSymbolicLink(Path.of("/proc/" + pid + "/exe"));
        } catch (java.io.IOException e) {
            throw new HpvmException(ExitCode.SYSTEM, "cannot read /proc/" + pid + "/exe: " + e.getMessage()
                + " (a kernel thread, or a process hpvm may not inspect)");
        }
    }

    /**
     * {@code pid} and every process descended from it that runs {@code program} mapped where {@code pid} has it
     * (forked, not exec'd): they share its text layout, so the same regions and the same rewritten text fit them.
     */
    private static List<Integer> copies(int pid, Path program) throws HpvmException {
        List<Integer> out = new ArrayList<>();
        long base = textStart(pid, program);
        for (int p : ProcFs.descendants(pid)) {
            try {
                if (p == pid || program(p).equals(program) && textStart(p, program) == base) {
                    out.add(p);
                }
            } catch (HpvmException e) {
                // ended meanwhile, or not ours to look at: not one of the copies
            }
        }
        return out;
    }

    private static long textStart(int pid, Path program) throws HpvmException {
        for (ProcFs.Mapping m : ProcFs.maps(pid)) {
            if (m.path().equals(program.toString())) {
                return m.start();
            }
        }
        return -1;
    }

    /**
     * Moves each thread stopped among the first instructions of an entry that now jumps to its stub; returns how
     * many. A thread that cannot be moved (it stopped where no instruction of the copy begins: impossible for code
     * the relocator accepted) fails the attach before anything runs again.
     */
    private static int moveOutOfEntries(WorldStop world, List<WorldStop.StoppedThread> stopped,
                                        Instrumentation.Setup s, List<PatchableFunctions.Function> functions)
        throws HpvmException {
        List<DisplacedEntry> entries = new ArrayList<>();
        for (Map.Entry<Integer, Long> e : s.trampolineOf.entrySet()) {
            int i = e.getKey();
            entries.add(new DisplacedEntry(functions.get(i).name(), s.entryPatchAt[i], s.entryOriginal[i],
                e.getValue()));
        }
        int moved = 0;
        for (WorldStop.StoppedThread t : stopped) {
            for (DisplacedEntry d : entries) {
                if (d.holds(t)) {
                    String why = d.moveInto(world, t);
                    if (why != null) {
                        throw new HpvmException(ExitCode.SYSTEM, why);
                    }
                    moved++;
                }
            }
        }
        return moved;
    }

    /** Prints the attached line, last: {@code hpvm attach} stops relaying the background supervisor's output there. */
    private void report(int pid, Path program, int functions, Instrumentation.Setup s, int threads, int processes,
                        int moved, long pausedMicros, long ms, SessionDir session, Timings timings,
                        String symbols, Path symbolFile) {
        if (options.timings()) {
            err.printf("hpvm: timings: %s%n", timings.describe());
        }
        if (options.json()) {
            err.println(new Json().put("event", "attached").put("program", program.toString()).put("pid", pid)
                .put("ready_ms", ms).put("paused_us", pausedMicros).put("threads", threads)
                .put("processes", processes).put("threads_moved", moved).put("functions", functions)
                .put("call_sites", s.callSites)
                .put("entries_redirected", s.trampolineOf.size()).put("session", session.dir().toString())
                .put("symbols", symbolFile == null ? null : symbolFile.toString()));
        } else if (!options.quiet()) {
            err.printf("hpvm: attached to %s (pid %d%s) in %d ms, its %d thread%s stopped for %.2f ms%s: %d functions "
                    + "patchable, %d call sites rewritten, %d entries redirected; session %s%s%n", program, pid,
                processes == 1 ? "" : " and " + (processes - 1) + " forked cop" + (processes == 2 ? "y" : "ies"), ms,
                threads, threads == 1 ? "" : "s", pausedMicros / 1000.0, moved == 0 ? ""
                    : " (" + moved + " moved out of an entry's first instructions)", functions, s.callSites,
                s.trampolineOf.size(), session.dir(), symbols);
        }
    }
}
