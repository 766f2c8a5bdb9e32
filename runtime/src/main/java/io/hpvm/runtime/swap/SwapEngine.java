package io.hpvm.runtime.swap;

import io.hpvm.asm.ClobberAnalysis;
import io.hpvm.asm.Decoder;
import io.hpvm.asm.Registers;
import io.hpvm.asm.Snippets;
import io.hpvm.loader.Elf;
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
                         List<String> clones) {
    }

    private final SessionDir session;

    public SwapEngine(SessionDir session) {
        this.session = session;
    }

    /** Replaces {@code function}'s body with {@code function} from {@code object}. */
    public Result swap(String function, Path object) throws HpvmException {
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
            FunctionRecord fn = function(reg, function, info);
            long base = (info.arenaNext() + 63) & ~63L;
            WorkerSymbols symbols;
            try {
                symbols = new WorkerSymbols(reg, info.pid(), info.loadBias());
            } catch (LoadException e) {
                throw ExitCode.wrap(e);
            }
            timings.mark("read-worker");
            LinkedImage image;
            try {
                image = Linker.link(obj, fn.name().replaceFirst("@0x[0-9a-f]+$", ""), symbols, base);
            } catch (LoadException e) {
                String more = symbols.ambiguous().isEmpty() ? ""
                    : "; not resolved with certainty: " + String.join(", ", symbols.ambiguous());
                throw new HpvmException(ExitCode.of(e), e.getMessage() + more, e);
            }
            timings.mark("link");
            long preserve = registersToPreserve(symbols, fn, image);
            timings.mark("clobber-analysis");
            long thunkAt = (base + image.size() + 15) & ~15L;
            byte[] thunk = new byte[0];
            if (preserve != 0) {
                try {
                    thunk = Snippets.thunk(thunkAt, image.entryAddress(), preserve);
                } catch (LoadException e) {
                    throw new SystemException("cannot link the register-preserving thunk: " + e.getMessage(), e);
                }
            }
            long end = preserve != 0 ? thunkAt + thunk.length : base + image.size();
            long target = preserve != 0 ? thunkAt : image.entryAddress();
            if (end > info.code() + info.codeSize()) {
                throw new HpvmException(ExitCode.SYSTEM, "the code arena of session " + session.dir() + " is full: "
                    + (end - base) + " bytes needed, " + Math.max(0, info.arenaFree()) + " free (start the worker "
                    + "with a larger --arena-size)");
            }
            // Reserve first: if anything below fails, the space is lost but never reused under a running thread.
            reg.putSession(info.withArenaNext(end));
            try (CodeRegion code = CodeRegion.open(session.code(), info.code());
                 SlotTable slots = SlotTable.open(session.slots())) {
                code.write(base, image.bytes());
                if (preserve != 0) {
                    code.write(thunkAt, thunk);
                }
                slots.setRelease(fn.slot(), target);
            } catch (IOException e) {
                throw new SystemException("session files in " + session.dir() + ": " + e.getMessage(), e);
            }
            timings.mark("write-and-store");
            int version = fn.versions();
            reg.putVersion(fn.name(), new VersionRecord(version, target, end - base,
                object.toAbsolutePath().toString(), System.currentTimeMillis(), preserve));
            reg.putFunction(fn.withCurrent(version, version + 1));
            timings.mark("record");
            return new Result(fn.name(), fn.current(), version, target, end - base,
                (System.nanoTime() - t0) / 1000, fn.entryRedirected(), preserve, image, timings, clones(symbols, fn));
        }
    }

    /**
     * The caller-saved registers the new version may write but the original never did (directly or through the
     * functions it calls). Callers built with gcc's -fipa-ra may keep live values there across the call, so a
     * thunk must restore them. Zero when the new version is no wider than the old.
     */
    private static long registersToPreserve(WorkerSymbols symbols, FunctionRecord fn, LinkedImage image) {
        try (Decoder decoder = new Decoder(true)) {
            long old = new ClobberAnalysis(decoder, new WorkerCode(symbols.executable(), symbols.executableBias()))
                .clobbers(fn.address());
            long now = new ClobberAnalysis(decoder, image::codeFrom).clobbers(image.entryAddress());
            return now & ~old & Registers.CALLER_SAVED;
        }
    }

    /** Points {@code function}'s slot back at an earlier version: {@code to}, or the one before the current. */
    public Result rollback(String function, Integer to) throws HpvmException {
        long t0 = System.nanoTime();
        try (SessionDir.Lock lock = session.lock(); Registry reg = Registry.open(session.registry().toFile())) {
            SessionInfo info = checkedSession(reg);
            FunctionRecord fn = function(reg, function, info);
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
            return new Result(fn.name(), fn.current(), target, address, 0, (System.nanoTime() - t0) / 1000, fn.entryRedirected(), 0, null, null, List.of());
        }
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

    /** The compiler flags the worker was started with ({@code hpvm run --cflags}), or "". */
    public String sessionCflags() throws HpvmException {
        try (Registry reg = session.openRegistry()) {
            return checkedSession(reg).cflags();
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
        if (Demangler.looksDemangled(name)) {
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
        return String.format("swapped %s: v%d -> v%d at %s (%d bytes from %s) in %.1f ms%s", r.function(),
            r.fromVersion(), r.toVersion(), Elf.hex(r.address()), r.size(), object, r.micros() / 1000.0,
            r.preserved() == 0 ? "" : "; via a register-preserving thunk (the new version may write "
                + Long.bitCount(r.preserved()) + " registers the original left intact)");
    }
}
