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
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.Timings;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.session.CodeRegion;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionInfo;
import io.hpvm.runtime.session.SiteTable;
import io.hpvm.runtime.session.SlotTable;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionException;

/**
 * What hpvm puts into a process, shared by {@code hpvm run} (a process stopped at its entry point) and
 * {@code hpvm attach} (a running process with every thread stopped): maps the slot table and code region into it,
 * writes a stub per patchable function, rewrites every proven direct call/jmp/jcc to a patchable entry so it goes
 * through the stub, redirects the entries it can, and afterwards writes the registry that describes all of it.
 */
final class Instrumentation {

    private final Supervisor.Options options;
    private final boolean atEntry;

    /** @param atEntry true for a process stopped at its entry point ({@code hpvm run}) */
    Instrumentation(Supervisor.Options options, boolean atEntry) {
        this.options = options;
        this.atEntry = atEntry;
    }

    /**
     * Placed before the arena, for calls the supervisor later makes in the worker ({@code RemoteThread}): an
     * {@code int3} at +0 for called functions to return to, and {@code syscall; int3} at +8.
     */
    private static final byte[] CALL_PAD = {
        (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc,
        0x0f, 0x05, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc, (byte) 0xcc};

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
        /** The worker's descriptor of the code memfd (noexec session root), or -1 when the code region is not one. */
        int codeFd = -1;
        /** Why gdb cannot name patched code ({@link DebuggerLaunch}), or null. */
        String notDebuggable;
        /** Why the code region is not a System V segment, or null when it is one ({@link CodeRegion}). */
        String codeNotShared;
        /** Every direct branch target in the program. */
        final io.hpvm.asm.LongList branchTargets = new io.hpvm.asm.LongList();

        void addBranchTarget(long target) {
            branchTargets.add(target);
        }
        Map<Integer, Long> trampolineOf = new HashMap<>();
        Map<Integer, String> entryNotes = new HashMap<>();
        long startTime;
        /** Taken over by {@code hpvm attach}, not started by {@code hpvm run}. */
        boolean attached;
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
                    // An entry's displaced bytes are whole instructions, so a site is among them exactly when its
                    // rel32 field is; one that begins where they end stays in the text and in this table.
                    Map.Entry<Long, Long> region = patched.floorEntry(d);
                    if (region == null || region.getValue() <= d) {
                        keep.add(d);
                    }
                }
                entries.add(new SiteTable.Entry(keep.toArray(), entryPatchAt[i],
                    entryOriginal[i] == null ? new byte[0] : entryOriginal[i]));
            }
            return new SiteTable(entries);
        }
    }

    /**
     * Stops the process for the steps that need it (mapping the regions, writing the text) and returns the thread
     * to run system calls in: {@code hpvm run}'s process is already stopped at its entry point; {@code hpvm attach}
     * stops every thread here.
     */
    @FunctionalInterface
    interface Stop {
        /**
         * Stops the process, and returns a thread of it to run system calls in, followed by one thread of each other
         * process that gets the same mapping and text ({@code hpvm attach --children}: forked copies of it).
         */
        List<Tracee> now() throws HpvmException;
    }

    /**
     * Instruments process {@code pid}. What only reads the process (its text, scanned and rewritten in a copy) and
     * fills hpvm's own files (slots, stubs, trampolines) is done before {@code stop} is called, so a running process
     * is stopped only for the mapping and the writes; except where the session root is mounted noexec, where the
     * code region is a memfd the process must create first.
     */
    Setup prepare(int pid, Stop stop, ElfImage image, List<PatchableFunctions.Function> functions,
                  SessionDir session, Timings timings) throws HpvmException {
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
        List<Tracee> tracees = null;
        try (SlotTable slots = SlotTable.create(session.slots(), n);
             ProcessMemory mem = new ProcessMemory(pid, true);
             CodeRegion shared = SharedRegions.segment(session, s.codeSize, s.codeAddress,
                 why -> s.codeNotShared = why);
             CodeRegion file = shared != null || session.noexecRoot() ? null : CodeRegion.create(session.code(),
                 s.codeSize, s.codeAddress);
             CodeRegion memfd = shared != null || file != null ? null : SharedRegions.mapMemfd(
                 only(tracees = stop.now()), mem, entryPoint, session, s.codeAddress, s.codeSize,
                 fd -> s.codeFd = fd)) {
            CodeRegion code = shared != null ? shared : file != null ? file : memfd;
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
                EntryRedirection.redirect(code, slots, PatchableFunctions.codeRanges(image, s.bias), functions, s,
                    text);
                timings.mark("redirect");
            }
            if (tracees == null) {
                tracees = stop.now();
                timings.mark("stop");
            }
            Tracee tracee = tracees.get(0);
            List<ProcessMemory> mems = new ArrayList<>(List.of(mem));
            try {
                for (Tracee t : tracees) {
                    ProcessMemory m = t == tracee ? mem : new ProcessMemory(t.pid(), true);
                    if (m != mem) {
                        mems.add(m);
                    }
                    SharedRegions.map(t, m, t == tracee ? entryPoint : ProcFs.auxv(t.pid(), ProcFs.AT_ENTRY), session,
                        s.slotsAddress, slotsSize, memfd == null ? code : null);
                }
                timings.mark("inject");
                text.flush(mems);
            } finally {
                for (ProcessMemory m : mems) {
                    if (m != mem) {
                        m.close();
                    }
                }
            }
            timings.mark("write");
            if (options.agent()) {
                s.agent = AgentLaunch.start(tracee, mem, code, entryPoint, s.agentCode, image, s.bias, maps);
                timings.mark("agent");
            }
            if (atEntry) {
                s.notDebuggable = DebuggerLaunch.load(tracee, mem, entryPoint, session, maps);
                timings.mark("debugger");
            }
        } catch (IOException e) {
            throw SystemException.io("session files in " + session.dir(), e);
        } catch (LoadException e) {
            throw new SystemException("cannot instantiate a dispatcher stub: " + e.getMessage(), e);
        }
        return s;
    }

    /** The one process of a code region that is a memfd: it cannot be mapped into another process. */
    private static Tracee only(List<Tracee> tracees) throws HpvmException {
        if (tracees.size() > 1) {
            throw new HpvmException(io.hpvm.runtime.ExitCode.REFUSED, "the session root is mounted noexec, so the "
                + "code region is a memfd of one process and cannot be shared with its children: set "
                + "HPVM_SESSION_ROOT to an exec-capable tmpfs to take over several processes as one session");
        }
        return tracees.get(0);
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

    static long loadBias(int pid, ElfImage image) throws SystemException {
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

    static Registry createRegistry(SessionDir session, int functions) {
        try {
            Registry reg = Registry.create(session.registry().toFile(), functions, session.workerPath("registry"));
            SessionDir.makePrivate(session.registry());
            return reg;
        } catch (SystemException e) {
            throw new CompletionException(e);
        }
    }

    void writeRegistry(Registry registry, SessionDir session, Setup s,
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
                functions.size(), s.callSites, System.currentTimeMillis(), options.cflags(), s.attached,
                image.symbolFile() == null ? "" : image.symbolFile().toAbsolutePath().toString()));
        }
    }
}
