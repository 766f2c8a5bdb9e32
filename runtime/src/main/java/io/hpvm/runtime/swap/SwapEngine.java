package io.hpvm.runtime.swap;

import io.hpvm.loader.Elf;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.ImageDiff;
import io.hpvm.loader.LinkedImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.RelocatableObject;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.Timings;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionInfo;
import io.hpvm.runtime.session.UnwindRegistrar;
import io.hpvm.runtime.session.VersionRecord;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Swaps and rolls back functions of a running worker through its session's shared files. A swap runs the passes of
 * {@link SwapPasses} in order under the session lock; a rollback ({@link Rollback}) is one slot store per function.
 * Any failure before a slot store leaves the worker's behaviour exactly as it was.
 */
public final class SwapEngine {

    /**
     * The outcome of a swap or rollback, for the one-line report.
     *
     * @param note     for a rollback, which version it returned to and why ("" for a swap)
     * @param warnings what the user must know although it went through
     * @param quiesced  how {@code --quiesce} went ("" without it)
     */
    public record Result(String function, int fromVersion, int toVersion, long address, long size, long micros,
                         boolean reachesEveryCall, long preserved, LinkedImage image, Timings timings, String unwind,
                         List<String> warnings, String note, String quiesced) {
        /** Whether the swap changed nothing: this object already ran in the function ({@code already-applied}). */
        public boolean alreadyApplied() {
            return note.startsWith(ALREADY_APPLIED);
        }

        /** This result with {@code more} added to its note and {@code how} as its quiesce report. */
        Result quiesced(String more, String how) {
            return new Result(function, fromVersion, toVersion, address, size, micros, reachesEveryCall, preserved,
                image, timings, unwind, warnings, note + more, how);
        }
    }

    private final SessionDir session;
    private boolean registerUnwindInfo = true;
    /** {@code --quiesce}: how long to wait, in milliseconds, or -1 without it. */
    private long quiesceMillis = -1;
    private boolean force;
    private UnwindRegistrar registrar = UnwindRegistrar.OVER_THE_SOCKET;

    public SwapEngine(SessionDir session) {
        this.session = session;
    }

    /**
     * Whether swaps register the patch's unwind information with the worker's unwinder (default on; see
     * {@link SwapPasses#registerUnwind}).
     */
    public SwapEngine registerUnwindInfo(boolean on) {
        this.registerUnwindInfo = on;
        return this;
    }

    /** Who registers unwind information in the worker (the supervisor, over its socket unless this is it). */
    public SwapEngine unwindRegistrar(UnwindRegistrar r) {
        this.registrar = r;
        return this;
    }

    /**
     * Makes the slot stores wait until no thread is in the code they replace ({@link Quiesce}), for at most
     * {@code millis}; then, with {@code force}, store anyway, else refuse.
     */
    public SwapEngine quiesce(long millis, boolean force) {
        this.quiesceMillis = millis;
        this.force = force;
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
        SwapContext c = new SwapContext(session, functions, object, registerUnwindInfo, registrar);
        c.quiesceMillis = quiesceMillis;
        c.force = force;
        try {
            c.obj = RelocatableObject.read(object);
            c.digest = sha256(c.obj.contents());
        } catch (LoadException e) {
            throw ExitCode.wrap(e);
        }
        c.timings.mark("parse");
        try (SessionDir.Lock lock = session.lock(); Registry reg = Registry.open(session.registry().toFile())) {
            c.registry = reg;
            c.timings.mark("open-registry");
            c.info = checkedSession(reg);
            for (SwapPasses.Pass pass : SwapPasses.SWAP) {
                run(c, pass);
                if (c.alreadyApplied) {
                    return alreadyApplied(c);
                }
            }
        }
        List<Result> results = new ArrayList<>();
        for (int i = 0; i < c.functions.size(); i++) {
            FunctionRecord fn = c.functions.get(i);
            results.add(new Result(fn.name(), fn.current(), c.versions[i], c.targets[i],
                i == 0 ? c.codeEnd() - c.base : 0, (System.nanoTime() - c.startNanos) / 1000, fn.entryRedirected(),
                c.preserved[i], c.image, c.timings, c.unwind, c.warnings.getOrDefault(fn.name(), List.of()),
                i == 0 ? c.routed : "", c.quiesced));
        }
        return results;
    }

    /** The results of a swap the already-applied pass found done before: each function stays where it is. */
    private static List<Result> alreadyApplied(SwapContext c) {
        List<Result> results = new ArrayList<>();
        for (FunctionRecord fn : c.functions) {
            VersionRecord v = c.registry.version(fn.name(), fn.current());
            results.add(new Result(fn.name(), fn.current(), fn.current(), v.address(), 0,
                (System.nanoTime() - c.startNanos) / 1000, fn.entryRedirected(), v.preserved(), null, c.timings, "",
                List.of(), ALREADY_APPLIED + " (sha256 " + c.digest.substring(0, 12) + ", swapped in "
                + java.time.Instant.ofEpochMilli(v.created()).toString().replaceAll("\\.\\d+Z$", "Z") + ")", ""));
        }
        return results;
    }

    /** How a no-op swap's note begins ({@link Result#alreadyApplied}). */
    static final String ALREADY_APPLIED = "already applied";

    /** SHA-256 of an object's bytes, hex. */
    static String sha256(byte[] object) {
        try {
            byte[] digest = java.security.MessageDigest.getInstance("SHA-256").digest(object);
            return java.util.HexFormat.of().formatHex(digest);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Runs one pass and times it. A pass after the commit (the slot stores) cannot make the swap fail: the new code
     * already runs, so what went wrong becomes a warning.
     */
    private static void run(SwapContext c, SwapPasses.Pass pass) throws HpvmException {
        if (!pass.afterCommit()) {
            pass.step().run(c);
        } else {
            try {
                pass.step().run(c);
            } catch (HpvmException | RuntimeException e) {
                c.warn(c.functions.get(0).name(), "the swap took effect, but its '" + pass.name() + "' step failed: "
                    + e.getMessage());
            }
        }
        c.timings.mark(pass.name());
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
            exe = WorkerSymbols.executable(info.pid(), info);
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

    /** Returns {@code function} to what ran before its current version, or to version {@code to}. */
    public Result rollback(String function, Integer to) throws HpvmException {
        return rollbackAll(function, to).get(0);
    }

    /**
     * Rolls back {@code function} (see {@link Rollback}); when its current version came in a patch set and no version
     * is given, every member of the set goes back too (first result: the function named).
     */
    public List<Result> rollbackAll(String function, Integer to) throws HpvmException {
        try (SessionDir.Lock lock = session.lock(); Registry reg = Registry.open(session.registry().toFile())) {
            SessionInfo info = checkedSession(reg);
            return new Rollback(session, reg).quiesce(quiesceMillis, force).run(FunctionLookup.find(reg, function,
                info), to);
        }
    }

    /**
     * Compacts {@code names} (or, with {@code all}, every function), or with {@code compact} false returns them to
     * routed; see {@link Compaction}. Needs ptrace rights over the worker (its supervisor has them).
     */
    public Compaction.Result compact(List<String> names, boolean all, boolean compact) throws HpvmException {
        try (SessionDir.Lock lock = session.lock(); Registry reg = Registry.open(session.registry().toFile())) {
            SessionInfo info = checkedSession(reg);
            List<FunctionRecord> fns = new ArrayList<>();
            if (all) {
                fns.addAll(reg.functions());
            } else {
                for (String name : names) {
                    fns.add(FunctionLookup.find(reg, name, info));
                }
            }
            return new Compaction(session, reg).apply(fns, compact);
        }
    }

    /** What the user must know about a swap that went through (printed as warnings). */
    public static List<String> warnings(Result r) {
        return r.warnings();
    }

    /** Formats the one-line report of a swap. */
    public static String describe(Result r, Path object) {
        if (r.alreadyApplied()) {
            return String.format("%s: v%d already runs %s, %s; nothing changed", r.function(), r.toVersion(), object,
                r.note());
        }
        return String.format("swapped %s: v%d -> v%d at %s (%d bytes from %s) in %.1f ms%s%s", r.function(),
            r.fromVersion(), r.toVersion(), Elf.hex(r.address()), r.size(), object, r.micros() / 1000.0,
            r.preserved() == 0 ? "" : "; via a register-preserving thunk (the new version may write "
                + Long.bitCount(r.preserved()) + " registers the original left intact)",
            r.unwind() == null || r.unwind().isEmpty() || r.size() == 0 ? "" : "; " + r.unwind())
            + (r.note().isEmpty() ? "" : "; first " + r.note()) + (r.quiesced().isEmpty() ? "" : "; " + r.quiesced());
    }

    /** Formats the one-line report of a rollback. */
    public static String describeRollback(Result r) {
        return String.format("rolled back %s: v%d -> v%d (%s) at %s in %.1f ms%s", r.function(), r.fromVersion(),
            r.toVersion(), r.note(), Elf.hex(r.address()), r.micros() / 1000.0, r.quiesced().isEmpty() ? ""
                : "; " + r.quiesced());
    }
}
