package io.hpvm.runtime.supervisor;

import io.hpvm.asm.CallSite;
import io.hpvm.asm.CallSiteScanner;
import io.hpvm.asm.Decoder;
import io.hpvm.asm.Relocator;
import io.hpvm.asm.Snippets;
import io.hpvm.loader.Elf;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.Segment;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.Timings;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.Spawner;
import io.hpvm.runtime.linux.SignalForwarder;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.linux.WaitStatus;
import io.hpvm.runtime.session.CodeRegion;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionInfo;
import io.hpvm.runtime.session.SessionRoot;
import io.hpvm.runtime.session.SiteTable;
import io.hpvm.runtime.session.SlotTable;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

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
     */
    public record Options(boolean quiet, long arenaSize, boolean timings, boolean redirectEntries, String cflags,
                          boolean agent, boolean json, CommandRunner commands, long autoCompactMillis) {
    }

    private final Options options;
    private final PrintStream err;

    /**
     * Placed before the arena, for calls the supervisor later makes in the worker ({@code RemoteThread}): an
     * {@code int3} at +0 for called functions to return to, and {@code syscall; int3} at +8.
     */
    private static final byte[] CALL_PAD = {
        (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc,
        0x0f, 0x05, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc};

    public Supervisor(Options options, PrintStream err) {
        this.options = options;
        this.err = err;
    }

    /** Runs the worker to completion; returns the exit status to exit with. */
    public int run(List<String> argv) throws HpvmException {
        Launched worker = launch(argv);
        warmUpCommands(worker.session());
        int status;
        try (ControlServer control = worker.server()) {
            status = control.serveUntilExit();
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
    private record Launched(SessionDir session, ControlServer server) {
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
        try {
            image = ElfImage.read(program);
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
        Setup setup;
        ControlServer server = null;
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
            registry = warm.thenApply(v -> createRegistry(s0, functions.size()));
            setup = prepare(tracee, image, functions, session, timings);
            server = new ControlServer(session, pid, setup.callPad, setup.agent == null ? null : setup.agent.agent(),
                options.commands(), options.autoCompactMillis() > 0
                    ? new AutoCompaction(session, options.autoCompactMillis(), err) : null);
            tracee.detach();
            timings.mark("detach");
            writeRegistry(joinRegistry(registry), session, setup, functions, program, image);
            timings.mark("registry");
            lock.close();
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
                .put("agent_thread", setup.agent == null || setup.agent.agent() == null ? null
                    : setup.agent.agent().tid()));
        } else if (!options.quiet()) {
            err.printf("hpvm: %s (pid %d) ready in %d ms: %d functions patchable, %d call sites rewritten, %d entries "
                    + "redirected; session %s%s%s%n", argv.get(0), pid, readyMs, functions.size(), setup.callSites,
                setup.trampolineOf.size(), session.dir(), setup.codeFd < 0 ? "" : " (its file system is noexec: the "
                    + "code region is a memfd, descriptor " + setup.codeFd + " of the worker)",
                setup.agent == null || setup.agent.agent() == null ? ""
                    : "; agent thread " + setup.agent.agent().tid() + " (hpvm-agent)");
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
    private void warmUpCommands(SessionDir session) {
        CommandRunner commands = options.commands();
        if (commands == null) {
            return;
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
            } catch (ClassNotFoundException | RuntimeException ignored) {
                // only a warm-up
            }
        }, "hpvm-warm-up");
        t.setDaemon(true);
        t.setPriority(Thread.MIN_PRIORITY);
        t.start();
    }

    /** What {@link #prepare} did, for the registry. */
    static final class Setup {
        long bias;
        long slotsAddress;
        long codeAddress;
        long codeSize;
        long arenaStart;
        /** {@link #CALL_PAD}'s address in the worker. */
        long callPad;
        /** Where hpvm's agent thread's code goes ({@link AgentLaunch}). */
        long agentCode;
        /** The agent thread, or why there is none; null when the worker has no use for one. */
        AgentLaunch.Result agent;
        int callSites;
        long bytesScanned;
        long trampolines;
        /** The worker's descriptor of the code memfd (noexec session root), or -1 when the code region is a file. */
        int codeFd = -1;
        /** Every direct branch target in the program. */
        final io.hpvm.asm.LongList branchTargets = new io.hpvm.asm.LongList();

        void addBranchTarget(long target) {
            branchTargets.add(target);
        }
        Map<Integer, Long> trampolineOf = new HashMap<>();
        Map<Integer, String> entryNotes = new HashMap<>();
        long startTime;
        /** Per slot: the rel32 fields of its rewritten call sites ({@link SiteTable}). */
        io.hpvm.asm.LongList[] sitesOf;
        /** Per slot: where its entry jump was written (0: not redirected), and the bytes it replaced. */
        long[] entryPatchAt;
        byte[][] entryOriginal;

        /** What compaction needs of this launch; call sites inside a redirected entry are gone, so left out. */
        SiteTable siteTable() {
            int n = sitesOf.length;
            java.util.TreeMap<Long, Long> patched = new java.util.TreeMap<>();
            for (int i = 0; i < n; i++) {
                if (entryPatchAt[i] != 0) {
                    patched.put(entryPatchAt[i], entryPatchAt[i] + entryOriginal[i].length);
                }
            }
            List<SiteTable.Entry> entries = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                io.hpvm.asm.LongList keep = new io.hpvm.asm.LongList();
                for (int k = 0; k < sitesOf[i].size(); k++) {
                    long d = sitesOf[i].get(k);
                    Map.Entry<Long, Long> region = patched.floorEntry(d + 3);
                    if (region == null || region.getValue() <= d - 2) { // the instruction is [d-2.., d+4)
                        keep.add(d);
                    }
                }
                entries.add(new SiteTable.Entry(keep.toArray(), entryPatchAt[i],
                    entryOriginal[i] == null ? new byte[0] : entryOriginal[i]));
            }
            return new SiteTable(entries);
        }
    }

    private Setup prepare(Tracee tracee, ElfImage image, List<PatchableFunctions.Function> functions,
                          SessionDir session, Timings timings) throws HpvmException {
        int pid = tracee.pid();
        Setup s = new Setup();
        s.startTime = ProcFs.startTime(pid);
        s.bias = loadBias(pid, image);
        List<ProcFs.Mapping> maps = ProcFs.maps(pid);
        long[] exeRange = exeRange(pid, maps, image, s.bias);

        int n = functions.size();
        s.sitesOf = new io.hpvm.asm.LongList[n];
        for (int i = 0; i < n; i++) {
            s.sitesOf[i] = new io.hpvm.asm.LongList();
        }
        s.entryPatchAt = new long[n];
        s.entryOriginal = new byte[n][];
        long slotsSize = SlotTable.fileSize(n);
        long stubsSize = Placement.alignUp((long) n * Snippets.STUB_STRIDE, 4096);
        long trampolinesSize = options.redirectEntries()
            ? Placement.alignUp((long) n * Relocator.MAX_TRAMPOLINE, 4096) : 0;
        s.codeSize = stubsSize + trampolinesSize + Placement.alignUp(options.arenaSize(), 4096);
        long block = slotsSize + s.codeSize;
        s.slotsAddress = Placement.choose(maps, exeRange[0], exeRange[1], block);
        s.codeAddress = s.slotsAddress + slotsSize;
        s.trampolines = s.codeAddress + stubsSize;
        s.callPad = s.trampolines + trampolinesSize;
        s.agentCode = s.callPad + CALL_PAD.length;
        s.arenaStart = s.agentCode + AgentLaunch.CODE_SPACE;

        long entryPoint = ProcFs.auxv(pid, ProcFs.AT_ENTRY);
        try (SlotTable slots = SlotTable.create(session.slots(), n);
             ProcessMemory mem = new ProcessMemory(pid, true);
             CodeRegion code = SharedRegions.map(tracee, mem, entryPoint, session, s.slotsAddress, slotsSize,
                 s.codeAddress, s.codeSize, fd -> s.codeFd = fd)) {
            timings.mark("inject");
            Map<Long, Integer> slotOfEntry = new HashMap<>();
            byte[][] stubs = Snippets.stubs(n, i -> stubAddress(s, i), i -> s.slotsAddress + SlotTable.offset(i));
            for (int i = 0; i < n; i++) {
                long entry = s.bias + functions.get(i).address();
                slots.setRelease(i, entry);
                code.write(stubAddress(s, i), stubs[i]);
                slotOfEntry.put(entry, i);
            }
            code.write(s.callPad, CALL_PAD);
            timings.mark("stubs");
            TextPatches text = rewriteCallSites(mem, image, s, slotOfEntry, timings);
            if (options.redirectEntries()) {
                EntryRedirection.redirect(code, slots, PatchableFunctions.codeRanges(image, s.bias), functions, s, text);
                timings.mark("redirect");
            }
            text.flush(mem);
            timings.mark("write");
            if (options.agent()) {
                s.agent = AgentLaunch.start(tracee, mem, code, entryPoint, s.agentCode, image, s.bias, maps);
                timings.mark("agent");
            }
        } catch (IOException e) {
            throw SystemException.io("session files in " + session.dir(), e);
        } catch (LoadException e) {
            throw new SystemException("cannot instantiate a dispatcher stub: " + e.getMessage(), e);
        }
        return s;
    }

    static long stubAddress(Setup s, int index) {
        return s.codeAddress + (long) index * Snippets.STUB_STRIDE;
    }

    /**
     * Rewrites the call sites in a copy of the worker's text (written into the worker by {@link TextPatches#flush}),
     * collecting every direct branch target on the way.
     */
    private TextPatches rewriteCallSites(ProcessMemory mem, ElfImage image, Setup s, Map<Long, Integer> slotOfEntry,
                                         Timings timings) throws SystemException {
        List<long[]> ranges = PatchableFunctions.codeRanges(image, s.bias);
        TextPatches patches = new TextPatches();
        // Two decoders: the scan is split between two threads (the machines hpvm measures on have two cores).
        try (Decoder decoder = new Decoder(); Decoder second = new Decoder()) {
            for (Segment seg : image.executableSegments()) {
                long start = s.bias + seg.vaddr();
                byte[] text = mem.read(start, (int) seg.fileSize());
                patches.addSegment(start, text);
                timings.mark("rewrite");
                CallSiteScanner.Result r = CallSiteScanner.scan(List.of(decoder, second), text, start, ranges,
                    slotOfEntry::containsKey, s::addBranchTarget);
                s.bytesScanned += r.bytesScanned();
                timings.mark("decode");
                ByteBuffer rel = ByteBuffer.wrap(text).order(ByteOrder.LITTLE_ENDIAN);
                for (CallSite site : r.sites()) {
                    int slot = slotOfEntry.get(site.target());
                    int at = (int) (site.displacementAddress() - start);
                    rel.putInt(at, site.displacementTo(stubAddress(s, slot)));
                    patches.edited(site.displacementAddress(), 4);
                    s.sitesOf[slot].add(site.displacementAddress());
                    s.callSites++;
                }
                timings.mark("rewrite");
            }
        }
        return patches;
    }

    private static long loadBias(int pid, ElfImage image) throws SystemException {
        if (!image.isPositionIndependent()) {
            return 0;
        }
        long phdrVaddr = image.programHeaderAddress();
        if (phdrVaddr >= 0) {
            return ProcFs.auxv(pid, ProcFs.AT_PHDR) - phdrVaddr;
        }
        return ProcFs.auxv(pid, ProcFs.AT_ENTRY) - image.entry();
    }

    /** [lowest, highest) address of the executable's mappings (and the brk heap, if it exists yet). */
    private static long[] exeRange(int pid, List<ProcFs.Mapping> maps, ElfImage image, long bias)
        throws SystemException {
        long lo = Long.MAX_VALUE;
        long hi = 0;
        for (Segment seg : image.segments()) {
            if (seg.type() == Elf.PT_LOAD) {
                lo = Math.min(lo, bias + seg.vaddr());
                hi = Math.max(hi, bias + seg.vaddr() + seg.memSize());
            }
        }
        for (ProcFs.Mapping m : maps) {
            if (m.path().equals("[heap]")) {
                hi = Math.max(hi, m.end());
            }
        }
        if (lo == Long.MAX_VALUE) {
            throw new SystemException("executable of process " + pid + " has no PT_LOAD segment");
        }
        return new long[] {Placement.alignDown(lo, 4096), Placement.alignUp(hi, 4096)};
    }

    private static Registry createRegistry(SessionDir session, int functions) {
        try {
            Registry reg = Registry.create(session.registry().toFile(), functions, session.workerPath("registry"));
            SessionDir.makePrivate(session.registry());
            return reg;
        } catch (SystemException e) {
            throw new CompletionException(e);
        }
    }

    private static Registry joinRegistry(CompletableFuture<Registry> registry) throws HpvmException {
        try {
            return registry.join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof HpvmException h) {
                throw h;
            }
            throw e;
        }
    }

    private void writeRegistry(Registry registry, SessionDir session, Setup s,
                               List<PatchableFunctions.Function> functions, Path program, ElfImage image)
        throws SystemException {
        try (Registry reg = registry) {
            s.siteTable().write(session.sites());
            for (int i = 0; i < functions.size(); i++) {
                PatchableFunctions.Function f = functions.get(i);
                long entry = s.bias + f.address();
                reg.putFunction(new FunctionRecord(f.name(), i, entry, f.size(), stubAddress(s, i),
                    s.sitesOf[i].size(), s.trampolineOf.getOrDefault(i, 0L),
                    options.redirectEntries() ? s.entryNotes.getOrDefault(i, "") : "entry redirection off"));
            }
            reg.putSession(new SessionInfo(session.pid(), s.startTime, program.toAbsolutePath().normalize().toString(),
                image.buildId(), s.bias, s.slotsAddress, s.codeAddress, s.codeSize, s.arenaStart, s.arenaStart,
                functions.size(), s.callSites, System.currentTimeMillis(), options.cflags()));
        }
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
