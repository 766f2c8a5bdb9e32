package io.hpvm.runtime.swap;

import io.hpvm.asm.ClobberAnalysis;
import io.hpvm.asm.Decoder;
import io.hpvm.asm.Registers;
import io.hpvm.asm.Snippets;
import io.hpvm.loader.DwarfInlines;
import io.hpvm.loader.ImageDiff;
import io.hpvm.loader.LinkedImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.Linker;
import io.hpvm.loader.Symbol;
import io.hpvm.loader.SymbolResolver;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.CodeRegion;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.SlotTable;
import io.hpvm.runtime.session.VersionRecord;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The passes of a swap, in order, as LLVM JITLink organises a link: each is a named step over one
 * {@link SwapContext}, timed under its name ({@code hpvm swap --timings}). The order is what keeps a failure
 * harmless: everything up to {@code reserve} only reads; {@code write} fills arena space no thread has ever run;
 * {@code store} is the one aligned 8-byte store per slot that makes the new code live. Passes after the store must
 * not undo it: the engine turns their failures into warnings.
 */
final class SwapPasses {

    private SwapPasses() {
    }

    /** One step of a swap. */
    @FunctionalInterface
    interface Step {
        void run(SwapContext c) throws HpvmException;
    }

    /**
     * A named step.
     *
     * @param afterCommit true for passes that run once the slots hold the new code: they may only report
     */
    record Pass(String name, Step step, boolean afterCommit) {
    }

    /** Bytes of code the register analysis decodes at most, per side (about a second each on a slow core). */
    static final long ORIGINAL_BUDGET = 32L << 20;
    static final long NEW_VERSION_BUDGET = 8L << 20;

    static final List<Pass> SWAP = List.of(
        new Pass("functions", SwapPasses::functions, false),
        new Pass("already-applied", SwapPasses::alreadyApplied, false),
        new Pass("read-worker", SwapPasses::readWorker, false),
        new Pass("link", SwapPasses::link, false),
        new Pass("clobber-analysis", SwapPasses::preserveRegisters, false),
        new Pass("debug-object", DebuggerRegistration::place, false),
        new Pass("reserve", SwapPasses::reserve, false),
        new Pass("write", SwapPasses::write, false),
        new Pass("unwind", SwapPasses::registerUnwind, false),
        new Pass("route", SwapPasses::route, false),
        new Pass("store", SwapPasses::store, false),
        new Pass("record", SwapPasses::record, true),
        new Pass("debugger", DebuggerRegistration::register, true),
        new Pass("warnings", SwapPasses::warnings, true));

    /** The registry records of the functions asked for; a name given twice is a usage error. */
    static void functions(SwapContext c) throws HpvmException {
        for (String f : c.requested) {
            FunctionRecord fn = FunctionLookup.find(c.registry, f, c.info);
            if (c.functions.stream().anyMatch(g -> g.name().equals(fn.name()))) {
                throw new HpvmException(ExitCode.USAGE, fn.name() + " is named twice");
            }
            c.functions.add(fn);
            c.entries.add(FunctionLookup.objectName(fn.name()));
        }
    }

    /**
     * Whether this object already runs in exactly these functions: each one's current version came from an object
     * with the same SHA-256, swapped as the same set. Then the swap is a no-op (the passes after this one are not
     * run) that succeeds and says so, as a fleet tool applying one patch to many hosts, some twice, needs.
     */
    static void alreadyApplied(SwapContext c) {
        String set = c.setName();
        for (FunctionRecord fn : c.functions) {
            VersionRecord v = fn.current() == 0 ? null : c.registry.version(fn.name(), fn.current());
            if (v == null || !v.digest().equals(c.digest) || !v.set().equals(set)) {
                return;
            }
        }
        c.alreadyApplied = true;
    }

    /** The worker's symbols: its executable, its patchable functions' stubs, its loaded libraries. */
    static void readWorker(SwapContext c) throws HpvmException {
        try {
            c.symbols = new WorkerSymbols(c.registry, c.info.pid(), c.info.loadBias());
        } catch (LoadException e) {
            throw ExitCode.wrap(e);
        }
    }

    /**
     * Links the functions as one image at the next free arena address, into at most the arena's free bytes: an
     * object too large for the arena is refused from its section sizes, before any analysis of its code.
     */
    static void link(SwapContext c) throws HpvmException {
        c.base = (c.info.arenaNext() + 63) & ~63L;
        long free = c.info.code() + c.info.codeSize() - c.base;
        try {
            c.image = Linker.link(c.obj, c.entries, c.symbols, c.base, Math.max(0, free));
        } catch (LoadException e) {
            if (e.kind() == LoadException.Kind.TOO_LARGE) {
                throw arenaFull(c, e.getMessage());
            }
            String more = c.symbols.ambiguous().isEmpty() ? ""
                : "; not resolved with certainty: " + String.join(", ", c.symbols.ambiguous());
            throw new HpvmException(ExitCode.of(e), e.getMessage() + more, e);
        }
        c.end = c.base + c.image.size();
    }

    private static HpvmException arenaFull(SwapContext c, String detail) {
        return new HpvmException(ExitCode.SYSTEM, "the code arena of session " + c.session.dir() + " is full: "
            + detail + "; start the worker with a larger --arena-size");
    }

    /**
     * gcc's -fipa-ra lets callers keep values in caller-saved registers the original never wrote; a member whose
     * new version writes more of them is entered through a register-preserving thunk, placed after the image.
     */
    static void preserveRegisters(SwapContext c) throws HpvmException {
        int n = c.functions.size();
        c.targets = new long[n];
        c.preserved = new long[n];
        try (Decoder decoder = new Decoder(true)) {
            // Budgets keep a huge patch (or original) from stalling the swap; over budget, each side takes the answer
            // that can only make hpvm preserve more: the original wrote nothing, the new version writes everything.
            ClobberAnalysis original = new ClobberAnalysis(decoder, new WorkerCode(c.symbols.executable(),
                c.symbols.executableBias()), ORIGINAL_BUDGET, 0);
            ClobberAnalysis updated = new ClobberAnalysis(decoder, c.image::codeFrom, NEW_VERSION_BUDGET,
                Registers.CALLER_SAVED);
            for (int i = 0; i < n; i++) {
                long entry = c.image.entries().get(c.entries.get(i));
                long before = original.clobbers(c.functions.get(i).address());
                c.preserved[i] = updated.clobbers(entry) & ~before & Registers.CALLER_SAVED;
                c.targets[i] = entry;
                if (c.preserved[i] == 0) {
                    continue;
                }
                long at = (c.end + 15) & ~15L;
                LinkedImage thunk;
                try {
                    thunk = Snippets.thunkImage(at, entry, c.preserved[i]);
                } catch (LoadException e) {
                    throw new SystemException("cannot link the register-preserving thunk: " + e.getMessage(), e);
                }
                c.thunks.put(at, thunk.bytes());
                if (thunk.unwindInfo() != 0) {
                    c.thunkUnwindTables.add(thunk.unwindInfo());
                }
                c.targets[i] = at;
                c.end = at + thunk.size();
            }
        }
    }

    /**
     * Takes the arena space in the registry before writing: if anything later fails, the space is lost but never
     * handed out again while a thread might run in it.
     */
    static void reserve(SwapContext c) throws HpvmException {
        if (c.end > c.info.code() + c.info.codeSize()) {
            throw arenaFull(c, (c.end - c.base) + " bytes needed (with register-preserving thunks and the "
                + "object for gdb), " + Math.max(0, c.info.arenaFree()) + " free");
        }
        c.registry.putSession(c.info.withArenaNext(c.end));
    }

    /** Copies the image and its thunks into the arena (space no thread has run). */
    static void write(SwapContext c) throws HpvmException {
        try (CodeRegion code = c.session.openCode(c.info.code())) {
            code.write(c.base, c.image.bytes());
            for (Map.Entry<Long, byte[]> t : c.thunks.entrySet()) {
                code.write(t.getKey(), t.getValue());
            }
        } catch (IOException e) {
            throw SystemException.io("session files in " + c.session.dir(), e);
        }
    }

    /**
     * Makes the new code's unwind information known to the worker's unwinder, so that C++ exceptions,
     * {@code backtrace()} and thread cancellation can unwind through it: the supervisor calls
     * {@code __register_frame_info} in the worker (it alone has ptrace rights). Before the store, so a failure leaves
     * the worker unchanged. Skipped when the image has no unwind information or the worker has no unwinder loaded.
     */
    static void registerUnwind(SwapContext c) throws HpvmException {
        if (c.image.unwindInfo() == 0) {
            return; // no unwind information for the new code: nothing can unwind through it anyway
        }
        if (!c.registerUnwindInfo) {
            c.unwind = "unwind info not registered (--no-unwind-info)";
            return;
        }
        SymbolResolver.Resolution fn = c.symbols.hasUnwinder()
            ? c.symbols.resolve("__register_frame_info", null) : null;
        if (fn == null) {
            return;
        }
        List<Long> tables = new ArrayList<>();
        tables.add(c.image.unwindInfo());
        tables.addAll(c.thunkUnwindTables); // a thunk's frame sits between the new code and its caller
        c.unwind = "unwind info " + c.registrar.register(c.session, fn.address(), tables);
    }

    /**
     * Compacted functions go back to routed first ({@link Compaction}: one short stop of the worker), so the slot
     * store reaches every call again.
     */
    static void route(SwapContext c) throws HpvmException {
        List<FunctionRecord> compacted = c.functions.stream().filter(FunctionRecord::compacted).toList();
        if (compacted.isEmpty()) {
            return;
        }
        Compaction.Result r = new Compaction(c.session, c.registry).apply(compacted, false);
        c.functions.replaceAll(f -> f.withCompacted(false));
        c.routed = Compaction.describe(r, false);
    }

    /**
     * The swap itself: one aligned 8-byte release store per slot; calls that start afterwards run the new code. With
     * {@code --quiesce}, made only while no thread is in the code being replaced ({@link Quiesce}).
     */
    static void store(SwapContext c) throws HpvmException {
        try (SlotTable slots = SlotTable.open(c.session.slots())) { // opened before any stop of the world
            if (c.quiesceMillis >= 0) {
                c.quiesced = Quiesce.run(c.session, c.registry, c.functions, c.quiesceMillis, c.force,
                    () -> storeSlots(c, slots)).describe();
            } else {
                storeSlots(c, slots);
            }
        } catch (IOException e) {
            throw SystemException.io("session files in " + c.session.dir(), e);
        }
    }

    private static void storeSlots(SwapContext c, SlotTable slots) {
        for (int i = 0; i < c.functions.size(); i++) {
            slots.setRelease(c.functions.get(i).slot(), c.targets[i]);
        }
    }

    /** Records each new version (a patch set's members name each other) and pushes it on the rollback stack. */
    static void record(SwapContext c) {
        int n = c.functions.size();
        String set = c.setName();
        List<Long> unwind = new ArrayList<>();
        if (c.image.unwindInfo() != 0) {
            unwind.add(c.image.unwindInfo());
        }
        unwind.addAll(c.thunkUnwindTables);
        c.versions = new int[n];
        long codeEnd = c.codeEnd();
        for (int i = 0; i < n; i++) {
            FunctionRecord fn = c.functions.get(i);
            int version = fn.versions();
            c.versions[i] = version;
            c.registry.putVersion(fn.name(), new VersionRecord(version, c.targets[i], i == 0 ? codeEnd - c.base : 0,
                c.objectName(), System.currentTimeMillis(), c.preserved[i], set, c.base, codeEnd, unwind, c.digest));
            c.registry.putFunction(fn.withInstalled(version, version + 1));
        }
    }

    /** What the user must know about a swap that went through: copies of the old code that stay in use. */
    static void warnings(SwapContext c) {
        Set<String> swapped = new HashSet<>(c.entries);
        Map<String, Set<String>> inlined = inlinedCopies(c, swapped);
        List<String> stale = staleCallees(c, swapped);
        for (int i = 0; i < c.functions.size(); i++) {
            FunctionRecord fn = c.functions.get(i);
            String name = fn.name();
            if (i == 0 && !stale.isEmpty()) {
                c.warn(name, "the new " + name + " calls " + String.join(", ", stale) + " in the worker, whose "
                    + "definition in the object differs (or is not proven the same); those calls run the worker's "
                    + "version: swap them too (hpvm swap " + name + " " + String.join(" ", stale) + " OBJECT), or let "
                    + "'hpvm swap --all-changed' or 'hpvm patch' find them");
            }
            List<String> clones = clones(c, fn);
            if (!clones.isEmpty()) {
                c.warn(name, "the compiler also made copies of " + name + " in the worker (" + String.join(", ",
                    clones) + "); callers that use them still run the old code");
            }
            List<String> into = new ArrayList<>(inlined.getOrDefault(c.entries.get(i), Set.of()));
            if (!into.isEmpty()) {
                c.warn(name, "the compiler inlined " + name + " into " + into.size() + " other function(s) of the "
                    + "worker (" + String.join(", ", into.subList(0, Math.min(8, into.size()))) + (into.size() > 8
                    ? ", ..." : "") + ", from its debug information); those copies still run the old code: swap them "
                    + "too, or all of them with 'hpvm patch'");
            }
            if (!fn.entryRedirected()) {
                c.warn(name, "the entry of " + name + " is not redirected (see 'hpvm ls'), so only its rewritten "
                    + "direct call sites reach the new version; calls through function pointers, short tail jumps and "
                    + "calls the compiler inlined still run the original");
            }
        }
    }

    /**
     * Where the compiler inlined the swapped functions in the worker, from its DWARF (when it has any): those copies
     * keep the old code. Copies inside functions swapped in the same set (itself, for recursion) are left out.
     */
    private static Map<String, Set<String>> inlinedCopies(SwapContext c, Set<String> swapped) {
        Map<String, Set<String>> out = new java.util.HashMap<>();
        try {
            DwarfInlines.inlinedInto(c.symbols.executable(), swapped).forEach((fn, into) -> {
                Set<String> others = new TreeSet<>(into);
                others.removeAll(swapped); // swapped with it: their copies are replaced too
                if (!others.isEmpty()) {
                    out.put(fn, others);
                }
            });
        } catch (LoadException e) {
            // unreadable debug information only costs the warning
        }
        return out;
    }

    /**
     * Functions the object defines that the new code calls in the worker (they are not part of the swap, so calls
     * bind to the worker's current versions) although the object's definition differs from the worker's or cannot
     * be proven the same ({@link ImageDiff}), unless the worker already runs this object's version of them.
     */
    private static List<String> staleCallees(SwapContext c, Set<String> swapped) {
        Set<String> bound = new HashSet<>();
        for (Symbol s : c.obj.symbols()) {
            if (s.isFunction() && s.isDefined() && !s.isLocal() && c.image.bindings().containsKey(s.name())
                && !swapped.contains(s.name())) {
                bound.add(s.name());
            }
        }
        List<String> out = new ArrayList<>();
        if (bound.isEmpty()) {
            return out;
        }
        for (ImageDiff.Match m : ImageDiff.compare(c.obj, c.symbols.executable(), bound::contains).changed()) {
            FunctionRecord callee = c.registry.function(m.name());
            VersionRecord current = callee == null || callee.current() == 0 ? null
                : c.registry.version(m.name(), callee.current());
            if (current == null || !current.object().equals(c.objectName())) {
                out.add(m.name());
            }
        }
        out.sort(null);
        return out;
    }

    /**
     * Compiler clones of the function in the worker ({@code fn.constprop.0}, {@code fn.isra.0}, {@code fn.part.0},
     * ...): separate copies of (parts of) its code that callers may use instead, which a swap of {@code fn} does not
     * change.
     */
    private static List<String> clones(SwapContext c, FunctionRecord fn) {
        String base = FunctionLookup.objectName(fn.name()) + ".";
        TreeSet<String> out = new TreeSet<>();
        for (Symbol s : c.symbols.executable().symbols()) {
            if (s.isFunction() && s.name().startsWith(base) && !s.name().contains(".cold")) {
                out.add(s.name());
            }
        }
        return List.copyOf(out);
    }
}
