package io.hpvm.runtime.swap;

import io.hpvm.asm.Relocator;
import io.hpvm.loader.CallFrameInfo;
import io.hpvm.loader.DwarfExpression;
import io.hpvm.loader.Elf;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.UnwindException;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.linux.WorldStop;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionInfo;
import io.hpvm.runtime.session.VersionRecord;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The frames of a stopped thread, found through call frame information as a debugger finds them: the
 * {@code .eh_frame} of the file each executable mapping comes from (the program, libc, ...; read once per supervisor,
 * keyed by path, device and inode), the tables each version brought into the arena ({@link VersionRecord#unwind}),
 * and what hpvm's own code does to a frame. A dispatcher stub is a single {@code jmp} run at its function's entry
 * state; a trampoline holds the function's first instructions, so the original's rules at the same offset hold in it
 * (exact unless relocation lengthened one of them, which only a short branch among the first few bytes does).
 *
 * <p>Where no rule applies (code without {@code .eh_frame}, a rule hpvm does not evaluate, an unreadable stack word,
 * a return address in no code, a stack pointer that does not grow), the walk stops and says why: the caller looks at
 * the rest of the stack the conservative way ({@link StackScan}) from that frame's stack pointer. Everything that
 * can be read while the threads run is read before the world is stopped ({@link #prepare}); the walk itself reads
 * only the stack pages it needs, once each.
 */
public final class StackWalk {

    /** At most this many frames per thread (deeper recursion: the rest is scanned). */
    static final int MAX_FRAMES = 4096;

    /**
     * One thread's walk.
     *
     * @param pcs      its frames' pcs, the innermost first (its rip), then each caller's return address
     * @param restSp   0 when the walk reached the outermost frame; else the stack pointer of the frame it could not
     *                 unwind, from which the rest of the stack is to be scanned
     * @param stoppedBecause why it could not ("" when complete)
     */
    record Walk(List<Long> pcs, long restSp, String stoppedBecause) {
        boolean complete() {
            return restSp == 0;
        }
    }

    private record Module(long start, long end, String name, CallFrameInfo cfi, long bias) {
    }

    private record Image(long start, long end, String name, List<CallFrameInfo> tables) {
    }

    /** Tables of files, by path, device and inode; empty when the file has none. */
    private static final Map<String, Optional<CallFrameInfo>> FILES = new ConcurrentHashMap<>();

    private final StackScan.Stacks stacks;
    private final Map<Integer, TreeMap<Long, Module>> modules = new HashMap<>();
    private final TreeMap<Long, Image> images = new TreeMap<>();
    private final Map<Long, FunctionRecord> stubs = new HashMap<>();
    private final TreeMap<Long, FunctionRecord> trampolines = new TreeMap<>();
    private final long codeStart;
    private final long codeEnd;

    private StackWalk(StackScan.Stacks stacks, long codeStart, long codeEnd) {
        this.stacks = stacks;
        this.codeStart = codeStart;
        this.codeEnd = codeEnd;
    }

    /**
     * Reads, with the threads running, what walks of the processes in {@code stacks} need: their executable mappings'
     * tables and the session's stubs, trampolines and version images.
     */
    static StackWalk prepare(StackScan.Stacks stacks, List<Integer> pids, Registry reg) throws SystemException {
        SessionInfo info = reg.session();
        StackWalk w = new StackWalk(stacks, info.code(), info.code() + info.codeSize());
        w.readModules(pids);
        ProcessMemory mem = stacks.memory(pids.get(0)); // the arena is shared: any process shows it
        for (FunctionRecord fn : reg.functions()) {
            w.stubs.put(fn.stub(), fn);
            if (fn.trampoline() != 0) {
                w.trampolines.put(fn.trampoline(), fn);
            }
            for (int v = 1; v < fn.versions(); v++) {
                VersionRecord r = reg.version(fn.name(), v);
                if (r == null || r.codeEnd() <= r.codeStart() || w.images.containsKey(r.codeStart())) {
                    continue;
                }
                List<CallFrameInfo> tables = new ArrayList<>();
                for (long eh : r.unwind()) {
                    if (eh >= r.codeStart() && eh < r.codeEnd()) {
                        try {
                            tables.add(CallFrameInfo.parse(mem.read(eh, (int) (r.codeEnd() - eh)), eh));
                        } catch (LoadException e) {
                            // unreadable table: frames in this image are scanned instead
                        }
                    }
                }
                w.images.put(r.codeStart(), new Image(r.codeStart(), r.codeEnd(), fn.name() + " v" + v, tables));
            }
        }
        return w;
    }

    private void readModules(List<Integer> pids) throws SystemException {
        for (int pid : pids) {
            TreeMap<Long, Module> mods = new TreeMap<>();
            for (ProcFs.Mapping m : stacks.maps(pid)) {
                if (m.isExecutable() && (m.end() <= codeStart || m.start() >= codeEnd)) {
                    mods.put(m.start(), module(m));
                }
            }
            modules.put(pid, mods);
        }
    }

    /**
     * Reads the call frame information of process {@code pid}'s code and walks its threads a number of times with
     * the threads running ({@link #rehearse}), on a supervisor's background thread after launch: the first
     * {@code --quiesce} then finds the tables read and the walk's code loaded and compiled, and the world stays
     * stopped for the walk alone (the first walks of a fresh JVM took 5-35 ms where a warm one takes 0.25).
     * 50 rounds: enough for the JIT's first tier, little enough not to compete with the launch for long.
     */
    public static void warmUp(int pid) {
        try (StackScan.Stacks stacks = new StackScan.Stacks(List.of(pid))) {
            StackWalk w = new StackWalk(stacks, 0, 0);
            w.readModules(List.of(pid));
            for (int i = 0; i < 50; i++) {
                w.rehearse(List.of(pid));
            }
        } catch (SystemException | RuntimeException e) {
            // only a warm-up: a quiesce reads what it needs itself
        }
    }

    /**
     * Walks each thread of {@code pids} that is blocked in a system call, with the threads running, from the stack
     * and instruction pointers {@code /proc/PID/task/TID/syscall} shows (its other registers unknown: zero), and
     * forgets the result: run just before the world is stopped, so that the walk made while it is finds the rules
     * of those pcs resolved, the stack code paths taken and the JIT's profile fresh. A thread that moves meanwhile
     * only makes the rehearsal go astray, harmlessly.
     */
    void rehearse(List<Integer> pids) {
        for (int pid : pids) {
            for (int tid : ProcFs.threads(pid)) {
                String[] f;
                try {
                    f = Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/syscall")).trim().split(" ");
                } catch (IOException | RuntimeException e) {
                    continue; // ended meanwhile, or no right to look
                }
                if (f.length == 9) { // "NR a1 .. a6 SP PC"; "running" or "-1 SP PC" otherwise
                    long[] regs = new long[CallFrameInfo.REGISTERS];
                    regs[CallFrameInfo.RSP] = Long.decode(f[7]);
                    regs[CallFrameInfo.RA] = Long.decode(f[8]);
                    try {
                        walk(pid, regs, new Pages(stacks.memory(pid)));
                    } catch (SystemException | RuntimeException e) {
                        // a rehearsal
                    }
                }
            }
        }
    }

    private static Module module(ProcFs.Mapping m) {
        String path = m.path();
        if (!path.startsWith("/") || path.endsWith(" (deleted)")) {
            return new Module(m.start(), m.end(), path.isEmpty() ? "anonymous memory" : path, null, 0);
        }
        Optional<CallFrameInfo> cfi = FILES.computeIfAbsent(path + "|" + m.device() + "|" + m.inode(), k -> {
            try {
                return Optional.ofNullable(CallFrameInfo.ofFile(Path.of(path)));
            } catch (LoadException | RuntimeException e) {
                return Optional.empty();
            }
        });
        long bias = 0;
        if (cfi.isPresent()) {
            try {
                bias = cfi.get().bias(m.start(), m.offset());
            } catch (LoadException e) {
                return new Module(m.start(), m.end(), path, null, 0);
            }
        }
        return new Module(m.start(), m.end(), path, cfi.orElse(null), bias);
    }

    /**
     * Walks stopped thread {@code t} from its registers. Reading its stack costs a page at a time, 10-25 us each on
     * the virtual machines measured, however it is read ({@code pread} of {@code /proc/PID/mem} per page, or one
     * {@code process_vm_readv} for every thread's page: no faster), so a walk reads only the pages it needs.
     */
    Walk walk(WorldStop world, WorldStop.StoppedThread t) throws SystemException {
        return walk(t.pid(), dwarf(world.registers(t.tid())), new Pages(stacks.memory(t.pid())));
    }

    /** Walks a stack of process {@code pid} from registers {@code regs} (DWARF numbering). */
    private Walk walk(int pid, long[] regs, Pages mem) throws SystemException {
        List<Long> pcs = new ArrayList<>();
        long pc = regs[CallFrameInfo.RA];
        boolean exact = true; // the innermost frame, or one a signal interrupted: pc is not a return address
        for (int depth = 0; depth < MAX_FRAMES; depth++) {
            pcs.add(pc);
            CallFrameInfo.Step step;
            try {
                step = step(pid, exact ? pc : pc - 1, exact, regs, mem);
            } catch (UnwindException e) {
                return new Walk(pcs, regs[CallFrameInfo.RSP], e.getMessage());
            }
            long[] caller = step.caller();
            if (caller == null || caller[CallFrameInfo.RA] == 0) {
                return new Walk(pcs, 0, "");
            }
            long next = caller[CallFrameInfo.RA];
            String wrong = !isCode(pid, next) ? "the return address " + Elf.hex(next) + " it finds is in no code"
                : !step.signalFrame() && Long.compareUnsigned(caller[CallFrameInfo.RSP], regs[CallFrameInfo.RSP]) <= 0
                ? "the caller's stack pointer " + Elf.hex(caller[CallFrameInfo.RSP]) + " is not above it" : null;
            if (wrong != null) {
                return new Walk(pcs, regs[CallFrameInfo.RSP], "unwinding the frame at " + Elf.hex(pc) + " goes wrong: "
                    + wrong);
            }
            exact = step.signalFrame();
            regs = caller;
            pc = next;
        }
        return new Walk(pcs, regs[CallFrameInfo.RSP], "more than " + MAX_FRAMES + " frames");
    }

    private CallFrameInfo.Step step(int pid, long lookup, boolean exact, long[] regs, DwarfExpression.Memory mem)
        throws UnwindException {
        if (exact && stubs.containsKey(lookup)) { // jmp [slot]: the function's entry state
            long sp = regs[CallFrameInfo.RSP];
            long[] caller = regs.clone();
            caller[CallFrameInfo.RA] = mem.read(sp);
            caller[CallFrameInfo.RSP] = sp + 8;
            return new CallFrameInfo.Step(caller, false, sp + 8);
        }
        Map.Entry<Long, FunctionRecord> tramp = trampolines.floorEntry(lookup);
        if (tramp != null && lookup < tramp.getKey() + Relocator.MAX_TRAMPOLINE) {
            return moduleStep(pid, tramp.getValue().address() + (lookup - tramp.getKey()), regs, mem);
        }
        Map.Entry<Long, Image> image = images.floorEntry(lookup);
        if (image != null && lookup < image.getValue().end()) {
            for (CallFrameInfo cfi : image.getValue().tables()) {
                if (cfi.covers(lookup)) {
                    return cfi.step(lookup, regs, mem);
                }
            }
            throw new UnwindException(Elf.hex(lookup) + " in " + image.getValue().name() + "'s image has no call "
                + "frame information (its object was built without unwind tables, or it is a veneer)");
        }
        return moduleStep(pid, lookup, regs, mem);
    }

    private CallFrameInfo.Step moduleStep(int pid, long lookup, long[] regs, DwarfExpression.Memory mem)
        throws UnwindException {
        Map.Entry<Long, Module> e = modules.get(pid).floorEntry(lookup);
        if (e == null || lookup >= e.getValue().end()) {
            throw new UnwindException(Elf.hex(lookup) + " is in no code hpvm knows of");
        }
        Module m = e.getValue();
        if (m.cfi() == null) {
            throw new UnwindException(Elf.hex(lookup) + " is in " + m.name() + ", which has no call frame information "
                + "hpvm reads");
        }
        return m.cfi().step(lookup - m.bias(), regs, mem);
    }

    private boolean isCode(int pid, long address) {
        if (address >= codeStart && address < codeEnd) {
            return true;
        }
        Map.Entry<Long, Module> e = modules.get(pid).floorEntry(address);
        return e != null && address < e.getValue().end();
    }

    /** ptrace's {@code user_regs_struct} in DWARF's numbering. */
    private static long[] dwarf(long[] user) {
        int[] order = {Tracee.RAX, Tracee.RDX, Tracee.RCX, Tracee.RBX, Tracee.RSI, Tracee.RDI, Tracee.RBP, Tracee.RSP,
            Tracee.R8, Tracee.R9, Tracee.R10, Tracee.R11, Tracee.R12, Tracee.R13, Tracee.R14, Tracee.R15, Tracee.RIP};
        long[] regs = new long[CallFrameInfo.REGISTERS];
        for (int i = 0; i < order.length; i++) {
            regs[i] = user[order[i]];
        }
        return regs;
    }

    /** A stopped process's memory, a page read at most once per walk. */
    private static final class Pages implements DwarfExpression.Memory {
        private final ProcessMemory mem;
        private final Map<Long, ByteBuffer> pages = new HashMap<>();

        Pages(ProcessMemory mem) {
            this.mem = mem;
        }

        @Override
        public long read(long address) throws UnwindException {
            long page = address & ~4095L;
            int offset = (int) (address - page);
            if (offset <= 4096 - 8) {
                return page(page, address).getLong(offset);
            }
            long value = 0;
            for (int i = 7; i >= 0; i--) {
                long a = address + i;
                value = value << 8 | (page(a & ~4095L, address).get((int) (a & 4095)) & 0xffL);
            }
            return value;
        }

        private ByteBuffer page(long page, long address) throws UnwindException {
            ByteBuffer b = pages.get(page);
            if (b == null) {
                try {
                    b = ByteBuffer.wrap(mem.read(page, 4096)).order(ByteOrder.LITTLE_ENDIAN);
                } catch (SystemException | RuntimeException e) {
                    throw new UnwindException("the stack word at " + Elf.hex(address) + " cannot be read");
                }
                pages.put(page, b);
            }
            return b;
        }
    }
}
