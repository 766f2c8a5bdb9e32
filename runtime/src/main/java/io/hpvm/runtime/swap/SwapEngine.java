package io.hpvm.runtime.swap;

import io.hpvm.asm.ClobberAnalysis;
import io.hpvm.asm.Decoder;
import io.hpvm.asm.Registers;
import io.hpvm.asm.Snippets;
import io.hpvm.loader.Elf;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.ImageDiff;
import io.hpvm.loader.LinkedImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.Linker;
import io.hpvm.loader.RelocatableObject;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.Timings;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.CodeRegion;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionInfo;
import io.hpvm.runtime.session.SlotTable;
import io.hpvm.runtime.session.VersionRecord;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Swaps and rolls back functions of a running worker through its session's shared files. The order is what keeps
 * a failure harmless: link completely (nothing written), reserve arena space in the registry, write the code into
 * never-executed arena space, and only then store the slot. Any failure before the store leaves the worker's
 * behaviour exactly as it was.
 */
public final class SwapEngine {

    /** The outcome of a swap or rollback, for the one-line report. */
    public record Result(String function, int fromVersion, int toVersion, long address, long size, long micros,
                         boolean reachesEveryCall, long preserved, LinkedImage image, Timings timings,
                         List<String> clones, String unwind, java.util.Set<String> inlinedInto,
                         List<String> staleCallees) {
    }

    private final SessionDir session;
    private boolean registerUnwindInfo = true;

    public SwapEngine(SessionDir session) {
        this.session = session;
    }

    /**
     * Whether swaps register the patch's unwind information with the worker's unwinder (default on; see
     * {@link #registerUnwind}).
     */
    public SwapEngine registerUnwindInfo(boolean on) {
        this.registerUnwindInfo = on;
        return this;
    }

    /** Replaces {@code function}'s body with {@code function} from {@code object}. */
    public Result swap(String function, Path object) throws HpvmException {
        return swap(List.of(function), object).get(0);
    }

    /**
     * Replaces several functions with their versions from {@code object}, as one patch set: linked into one image
     * (members call each other's new code directly), written, then the slots are stored one after another and the
     * versions recorded as a set, which a rollback of any member undoes whole.
     */
    public List<Result> swap(List<String> functions, Path object) throws HpvmException {
        long t0 = System.nanoTime();
        Timings timings = new Timings();
        RelocatableObject obj;
        try {
            obj = RelocatableObject.read(object);
        } catch (LoadException e) {
            throw ExitCode.wrap(e);
        }
        timings.mark("parse");
        try (SessionDir.Lock lock = session.lock(); Registry reg = Registry.open(session.registry().toFile())) {
            timings.mark("open-registry");
            SessionInfo info = checkedSession(reg);
            List<FunctionRecord> fns = new ArrayList<>();
            List<String> names = new ArrayList<>();
            for (String f : functions) {
                FunctionRecord fn = function(reg, f, info);
                if (names.contains(fn.name())) {
                    throw new HpvmException(ExitCode.USAGE, fn.name() + " is named twice");
                }
                fns.add(fn);
                names.add(fn.name());
            }
            long base = (info.arenaNext() + 63) & ~63L;
            WorkerSymbols symbols;
            try {
                symbols = new WorkerSymbols(reg, info.pid(), info.loadBias());
            } catch (LoadException e) {
                throw ExitCode.wrap(e);
            }
            timings.mark("read-worker");
            List<String> entries = names.stream().map(n -> n.replaceFirst("@0x[0-9a-f]+$", "")).toList();
            LinkedImage image;
            try {
                image = Linker.link(obj, entries, symbols, base);
            } catch (LoadException e) {
                String more = symbols.ambiguous().isEmpty() ? ""
                    : "; not resolved with certainty: " + String.join(", ", symbols.ambiguous());
                throw new HpvmException(ExitCode.of(e), e.getMessage() + more, e);
            }
            timings.mark("link");
            java.util.Map<String, java.util.Set<String>> inlined = inlinedCopies(symbols, entries);
            timings.mark("dwarf");
            List<String> stale = new ArrayList<>();
            for (String name : staleCallees(obj, symbols, image, entries)) {
                FunctionRecord callee = reg.function(name);
                VersionRecord current = callee == null || callee.current() == 0 ? null
                    : reg.version(name, callee.current());
                if (current == null || !current.object().equals(object.toAbsolutePath().toString())) {
                    stale.add(name); // unless the worker already runs this object's version of it
                }
            }
            timings.mark("compare-callees");
            // A register-preserving thunk per member whose new version writes more than its original.
            long end = base + image.size();
            long[] targets = new long[fns.size()];
            long[] preserved = new long[fns.size()];
            List<byte[]> thunks = new ArrayList<>();
            List<Long> unwindTables = new ArrayList<>(); // the thunks' (the image's is added when it has one)
            List<Long> thunkAt = new ArrayList<>();
            for (int i = 0; i < fns.size(); i++) {
                long entry = image.entries().get(entries.get(i));
                preserved[i] = registersToPreserve(symbols, fns.get(i), image, entry);
                targets[i] = entry;
                if (preserved[i] != 0) {
                    long at = (end + 15) & ~15L;
                    try {
                        LinkedImage thunk = Snippets.thunkImage(at, entry, preserved[i]);
                        thunks.add(thunk.bytes());
                        if (thunk.unwindInfo() != 0) {
                            unwindTables.add(thunk.unwindInfo());
                        }
                    } catch (LoadException e) {
                        throw new SystemException("cannot link the register-preserving thunk: " + e.getMessage(), e);
                    }
                    thunkAt.add(at);
                    targets[i] = at;
                    end = at + thunks.get(thunks.size() - 1).length;
                }
            }
            timings.mark("clobber-analysis");
            if (end > info.code() + info.codeSize()) {
                throw new HpvmException(ExitCode.SYSTEM, "the code arena of session " + session.dir() + " is full: "
                    + (end - base) + " bytes needed, " + Math.max(0, info.arenaFree()) + " free (start the worker "
                    + "with a larger --arena-size)");
            }
            // Reserve first: if anything below fails, the space is lost but never reused under a running thread.
            reg.putSession(info.withArenaNext(end));
            String unwind;
            try (CodeRegion code = CodeRegion.open(session.code(), info.code());
                 SlotTable slots = SlotTable.open(session.slots())) {
                code.write(base, image.bytes());
                for (int k = 0; k < thunks.size(); k++) {
                    code.write(thunkAt.get(k), thunks.get(k));
                }
                timings.mark("write");
                unwind = registerUnwind(symbols, image, unwindTables);
                timings.mark("unwind");
                for (int i = 0; i < fns.size(); i++) {
                    slots.setRelease(fns.get(i).slot(), targets[i]);
                }
            } catch (IOException e) {
                throw new SystemException("session files in " + session.dir() + ": " + e.getMessage(), e);
            }
            timings.mark("store");
            String set = fns.size() > 1 ? String.join(",", names) : "";
            List<Result> results = new ArrayList<>();
            for (int i = 0; i < fns.size(); i++) {
                FunctionRecord fn = fns.get(i);
                int version = fn.versions();
                reg.putVersion(fn.name(), new VersionRecord(version, targets[i], i == 0 ? end - base : 0,
                    object.toAbsolutePath().toString(), System.currentTimeMillis(), preserved[i], set));
                reg.putFunction(fn.withCurrent(version, version + 1));
                results.add(new Result(fn.name(), fn.current(), version, targets[i], i == 0 ? end - base : 0,
                    (System.nanoTime() - t0) / 1000, fn.entryRedirected(), preserved[i], image, timings,
                    clones(symbols, fn), unwind, inlined.getOrDefault(fn.name().replaceFirst("@0x[0-9a-f]+$", ""),
                    java.util.Set.of()), i == 0 ? stale : List.of()));
            }
            timings.mark("record");
            return results;
        }
    }

    /**
     * What {@code hpvm swap --all-changed} swaps: the functions of {@code object} whose code differs from the
     * worker's (by {@link ImageDiff}, against the executable the worker runs), as registry names.
     *
     * @param changed the worker's patchable functions the object changes
     * @param same    functions proven to be the same code
     * @param absent  functions only the object has (new, or inlined everywhere in the worker)
     */
    public record Changes(List<String> changed, List<String> same, List<String> absent) {
    }

    public Changes changedFunctions(Path object) throws HpvmException {
        RelocatableObject obj;
        ElfImage exe;
        try (Registry reg = session.openRegistry()) {
            SessionInfo info = checkedSession(reg);
            obj = RelocatableObject.read(object);
            exe = ElfImage.read(Path.of("/proc/" + info.pid() + "/exe"));
            ImageDiff.Result diff = ImageDiff.compare(obj, exe);
            List<String> changed = new ArrayList<>();
            List<String> same = new ArrayList<>();
            List<String> absent = new ArrayList<>(diff.absent());
            for (ImageDiff.Match m : diff.matches()) {
                FunctionRecord plain = reg.function(m.name());
                String name = plain != null && plain.address() - info.loadBias() == m.address() ? m.name()
                    : m.name() + "@0x" + Long.toHexString(m.address());
                if (reg.function(name) == null) {
                    absent.add(m.name());
                } else {
                    (m.same() ? same : changed).add(name);
                }
            }
            return new Changes(changed, same, absent);
        } catch (LoadException e) {
            throw ExitCode.wrap(e);
        }
    }

    /**
     * Makes the new code's unwind information known to the worker's unwinder, so that C++ exceptions,
     * {@code backtrace()} and thread cancellation can unwind through it: the linked image carries a relocated
     * {@code .eh_frame}, and the supervisor calls {@code __register_frame_info} on it in the worker (a call needs
     * ptrace rights, which the supervisor has as the worker's parent). Done before the slot store, so a failure
     * leaves the worker unchanged. Skipped when the image has no unwind information or the worker has no unwinder
     * loaded (a C program without libgcc_s: nothing there could unwind). Returns what was done, for the report.
     */
    private String registerUnwind(WorkerSymbols symbols, LinkedImage image, List<Long> thunkTables)
        throws SystemException {
        if (image.unwindInfo() == 0) {
            return ""; // no unwind information for the new code: nothing can unwind through it anyway
        }
        if (!registerUnwindInfo) {
            return "unwind info not registered (--no-unwind-info)";
        }
        io.hpvm.loader.SymbolResolver.Resolution fn = symbols.hasUnwinder()
            ? symbols.resolve("__register_frame_info", null) : null;
        if (fn == null) {
            return "";
        }
        List<Long> tables = new ArrayList<>();
        tables.add(image.unwindInfo());
        tables.addAll(thunkTables); // a thunk's frame sits between the new code and its caller
        String detail = io.hpvm.runtime.session.ControlClient.registerUnwind(session, fn.address(), tables);
        return "unwind info " + detail;
    }

    /**
     * The caller-saved registers the new version may write but the original never did (directly or through the
     * functions it calls). Callers built with gcc's -fipa-ra may keep live values there across the call, so a
     * thunk must restore them. Zero when the new version is no wider than the old.
     */
    private static long registersToPreserve(WorkerSymbols symbols, FunctionRecord fn, LinkedImage image,
                                            long entry) {
        try (Decoder decoder = new Decoder(true)) {
            long old = new ClobberAnalysis(decoder, new WorkerCode(symbols.executable(), symbols.executableBias()))
                .clobbers(fn.address());
            long now = new ClobberAnalysis(decoder, image::codeFrom).clobbers(entry);
            return now & ~old & Registers.CALLER_SAVED;
        }
    }

    /** Points {@code function}'s slot back at an earlier version: {@code to}, or the one before the current. */
    public Result rollback(String function, Integer to) throws HpvmException {
        return rollbackAll(function, to).get(0);
    }

    /**
     * Rolls back {@code function}; when its current version came in a patch set and no version is given, every
     * member of the set goes back to its version before the set (first result: the function named).
     */
    public List<Result> rollbackAll(String function, Integer to) throws HpvmException {
        List<Result> out = new ArrayList<>();
        String set;
        try (SessionDir.Lock lock = session.lock(); Registry reg = Registry.open(session.registry().toFile())) {
            SessionInfo info = checkedSession(reg);
            FunctionRecord fn = function(reg, function, info);
            VersionRecord current = fn.current() > 0 ? reg.version(fn.name(), fn.current()) : null;
            set = to == null && current != null ? current.set() : "";
            out.add(rollbackOne(reg, info, fn, to));
            if (!set.isEmpty()) {
                for (String member : set.split(",")) {
                    if (!member.equals(fn.name())) {
                        FunctionRecord m = reg.function(member);
                        VersionRecord mv = m == null || m.current() == 0 ? null : reg.version(member, m.current());
                        if (mv != null && set.equals(mv.set())) {
                            out.add(rollbackOne(reg, info, m, null));
                        }
                    }
                }
            }
        }
        return out;
    }

    private Result rollbackOne(Registry reg, SessionInfo info, FunctionRecord fn, Integer to) throws HpvmException {
        long t0 = System.nanoTime();
        int target = to != null ? to : fn.current() - 1;
        if (target < 0) {
            throw new HpvmException(ExitCode.USAGE, fn.name() + " already runs version 0, the original code; "
                + "there is nothing to roll back to");
        }
        if (target >= fn.versions()) {
            throw new HpvmException(ExitCode.USAGE, fn.name() + " has no version " + target + " (versions 0.."
                + (fn.versions() - 1) + ")");
        }
        long address = addressOf(reg, fn, target);
        try (SlotTable slots = SlotTable.open(session.slots())) {
            slots.setRelease(fn.slot(), address);
        } catch (IOException e) {
            throw new SystemException("session files in " + session.dir() + ": " + e.getMessage(), e);
        }
        reg.putFunction(fn.withCurrent(target, fn.versions()));
        return new Result(fn.name(), fn.current(), target, address, 0, (System.nanoTime() - t0) / 1000,
            fn.entryRedirected(), 0, null, null, List.of(), "", java.util.Set.of(), List.of());
    }

    /**
     * Where the compiler inlined the swapped functions in the worker, from its DWARF (when it has any): those copies
     * keep the old code. Copies inside functions swapped in the same set (itself, for recursion) are left out.
     */
    private static java.util.Map<String, java.util.Set<String>> inlinedCopies(WorkerSymbols symbols,
                                                                              List<String> functions) {
        try {
            java.util.Map<String, java.util.Set<String>> all = io.hpvm.loader.DwarfInlines.inlinedInto(
                symbols.executable(), new java.util.HashSet<>(functions));
            java.util.Map<String, java.util.Set<String>> out = new java.util.HashMap<>();
            all.forEach((fn, into) -> {
                java.util.Set<String> others = new java.util.TreeSet<>(into);
                others.removeAll(functions); // swapped with it: their copies are replaced too
                if (!others.isEmpty()) {
                    out.put(fn, others);
                }
            });
            return out;
        } catch (LoadException e) {
            return java.util.Map.of(); // unreadable debug information only costs the warning
        }
    }

    /**
     * Functions the object defines that the new code calls in the worker (they are not part of the swap, so calls
     * bind to the worker's current versions) although the object's definition differs from the worker's or cannot
     * be proven the same ({@link ImageDiff}): a whole file recompiled after editing two functions but swapped for
     * one, or an edited inline function (a COMDAT copy) that the worker already has.
     */
    private static List<String> staleCallees(RelocatableObject obj, WorkerSymbols symbols, LinkedImage image,
                                             List<String> entries) {
        java.util.Set<String> bound = new java.util.HashSet<>();
        for (io.hpvm.loader.Symbol s : obj.symbols()) {
            if (s.isFunction() && s.isDefined() && !s.isLocal() && image.bindings().containsKey(s.name())
                && !entries.contains(s.name())) {
                bound.add(s.name());
            }
        }
        if (bound.isEmpty()) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        for (ImageDiff.Match m : ImageDiff.compare(obj, symbols.executable(), bound::contains).changed()) {
            out.add(m.name());
        }
        out.sort(null);
        return out;
    }

    /** What the user must know about a swap that went through: copies of the old code that stay in use. */
    public static List<String> warnings(Result r) {
        List<String> out = new ArrayList<>();
        if (r.staleCallees() != null && !r.staleCallees().isEmpty()) {
            out.add("the new " + r.function() + " calls " + String.join(", ", r.staleCallees()) + " in the worker, "
                + "whose definition in the object differs (or is not proven the same); those calls run the worker's "
                + "version: swap them too (hpvm swap " + r.function() + " " + String.join(" ", r.staleCallees())
                + " OBJECT), or let 'hpvm swap --all-changed' or 'hpvm patch' find them");
        }
        if (!r.clones().isEmpty()) {
            out.add("the compiler also made copies of " + r.function() + " in the worker (" + String.join(", ",
                r.clones()) + "); callers that use them still run the old code");
        }
        if (r.inlinedInto() != null && !r.inlinedInto().isEmpty()) {
            List<String> into = new ArrayList<>(r.inlinedInto());
            out.add("the compiler inlined " + r.function() + " into " + into.size() + " other function(s) of the "
                + "worker (" + String.join(", ", into.subList(0, Math.min(8, into.size()))) + (into.size() > 8
                ? ", ..." : "") + ", from its debug information); those copies still run the old code: swap them "
                + "too, or all of them with 'hpvm patch'");
        }
        if (!r.reachesEveryCall()) {
            out.add("the entry of " + r.function() + " is not redirected (see 'hpvm ls'), so only its rewritten "
                + "direct call sites reach the new version; calls through function pointers, short tail jumps and "
                + "calls the compiler inlined still run the original");
        }
        return out;
    }

    /**
     * Compiler clones of the function in the worker ({@code fn.constprop.0}, {@code fn.isra.0}, {@code fn.part.0},
     * ...): separate copies of (parts of) its code that callers may use instead, which a swap of {@code fn} does not
     * change.
     */
    private static List<String> clones(WorkerSymbols symbols, FunctionRecord fn) {
        String base = fn.name().replaceFirst("@0x[0-9a-f]+$", "") + ".";
        java.util.TreeSet<String> out = new java.util.TreeSet<>();
        for (io.hpvm.loader.Symbol s : symbols.executable().symbols()) {
            if (s.isFunction() && s.name().startsWith(base) && !s.name().contains(".cold")) {
                out.add(s.name());
            }
        }
        return List.copyOf(out);
    }

    /**
     * Flags for compiling a patch from source: {@code override} when given, else those the worker was started with
     * ({@code hpvm run --cflags}), else {@code -O2}.
     */
    public String compileFlags(String override) throws HpvmException {
        if (override != null) {
            return override;
        }
        try (Registry reg = session.openRegistry()) {
            String recorded = checkedSession(reg).cflags();
            return recorded.isBlank() ? "-O2" : recorded;
        }
    }

    /** The entry address of a version (0 is the original). */
    public static long addressOf(Registry reg, FunctionRecord fn, int version) throws SystemException {
        if (version == 0) {
            return fn.originalTarget();
        }
        VersionRecord v = reg.version(fn.name(), version);
        if (v == null) {
            throw new SystemException("registry has no record of " + fn.name() + " version " + version);
        }
        return v.address();
    }

    /** The session's metadata, after checking its worker is the process that created it. */
    public SessionInfo checkedSession(Registry reg) throws HpvmException {
        SessionInfo info = reg.session();
        long start = ProcFs.startTime(info.pid());
        if (start != info.startTime()) {
            throw new HpvmException(ExitCode.NO_SESSION, "the worker of session " + session.dir() + " (pid "
                + info.pid() + ") has exited" + (start >= 0 ? " and its pid was reused" : ""));
        }
        return info;
    }

    private FunctionRecord function(Registry reg, String name, SessionInfo info) throws HpvmException {
        FunctionRecord fn = reg.function(name);
        if (fn != null) {
            return fn;
        }
        if (Demangler.looksDemangled(name) || !name.startsWith("_Z")) {
            // 'ns::Class::method(int)', or a plain 'handle' for the C++ function handle(int)
            FunctionRecord cxx = byDemangledName(reg, name);
            if (cxx != null) {
                return cxx;
            }
        }
        List<String> similar = new ArrayList<>();
        for (FunctionRecord f : reg.functions()) {
            if (f.name().startsWith(name + "@") || f.name().contains(name)) {
                similar.add(f.name());
            }
        }
        similar.sort(null);
        throw new HpvmException(ExitCode.LINK_FAILED, "the worker (pid " + info.pid() + ", " + info.executable()
            + ") has no patchable function '" + name + "'"
            + (similar.isEmpty() ? "; 'hpvm ls' lists them" : "; did you mean: " + String.join(", ",
            similar.subList(0, Math.min(8, similar.size()))) + "?"));
    }

    /**
     * The function whose demangled name is {@code name} ({@code ns::Class::method(int)}), or, when {@code name} has
     * no parameter list, the only overload of that qualified name.
     */
    private static FunctionRecord byDemangledName(Registry reg, String name) throws HpvmException {
        List<FunctionRecord> all = reg.functions();
        List<String> mangled = all.stream().map(FunctionRecord::name).toList();
        if (mangled.stream().noneMatch(n -> n.startsWith("_Z"))) {
            return null; // a C program: nothing to demangle
        }
        List<String> plain = Demangler.demangle(mangled);
        List<FunctionRecord> exact = new ArrayList<>();
        List<FunctionRecord> overloads = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            String d = plain.get(i);
            if (d.equals(name)) {
                exact.add(all.get(i));
            } else if (!name.contains("(") && d.startsWith(name + "(")) {
                overloads.add(all.get(i));
            }
        }
        if (exact.size() == 1) {
            return exact.get(0);
        }
        if (exact.isEmpty() && overloads.size() == 1) {
            return overloads.get(0);
        }
        if (overloads.size() > 1) {
            List<String> names = new ArrayList<>();
            for (FunctionRecord f : overloads) {
                names.add(plain.get(all.indexOf(f)));
            }
            throw new HpvmException(ExitCode.USAGE, "'" + name + "' is overloaded in the worker: " + String.join(", ",
                names) + "; give the parameter list");
        }
        return null;
    }

    /** Formats the one-line report of a swap. */
    public static String describe(Result r, Path object) {
        return String.format("swapped %s: v%d -> v%d at %s (%d bytes from %s) in %.1f ms%s%s", r.function(),
            r.fromVersion(), r.toVersion(), Elf.hex(r.address()), r.size(), object, r.micros() / 1000.0,
            r.preserved() == 0 ? "" : "; via a register-preserving thunk (the new version may write "
                + Long.bitCount(r.preserved()) + " registers the original left intact)",
            r.unwind() == null || r.unwind().isEmpty() || r.size() == 0 ? "" : "; " + r.unwind());
    }
}
