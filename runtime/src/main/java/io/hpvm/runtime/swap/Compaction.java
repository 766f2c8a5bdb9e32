package io.hpvm.runtime.swap;

import io.hpvm.asm.CallSite;
import io.hpvm.asm.CallSiteScanner;
import io.hpvm.asm.Decoder;
import io.hpvm.asm.Relocator;
import io.hpvm.loader.Elf;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.WorldStop;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SiteTable;
import io.hpvm.runtime.session.SlotTable;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Moves functions between the two states of {@code ../shared/DESIGN.md}, "Compaction". <em>Routed</em>: the call
 * sites rewritten at launch branch to the function's stub ({@code jmp [slot]}), and a redirected entry jumps to the
 * stub too, so a swap is one slot store. <em>Compacted</em>: those sites branch straight to what the slot holds
 * (the current version, or its register-preserving thunk; at version 0 the original entry, whose first bytes are
 * put back), and a redirected entry of a later version jumps straight to it: the calls run at native speed.
 *
 * <p>This changes code other threads may be running, so it is done with every thread of every process of the
 * session stopped ({@link WorldStop}); the edits are rel32 fields of whole branch instructions (a thread is never
 * inside one: it stops at an instruction boundary, and the instruction it resumes at is read afresh) and the entry's
 * first bytes. Those are the one hazard: a thread stopped inside an entry's restored instructions (after the first,
 * or in a system call among them that the kernel restarts by stepping back over the {@code syscall}) would resume in
 * the middle of the jump written over them. Such a thread is moved to the same place in the trampoline's copy of
 * those instructions (the trampoline is version 0's way in, and jumps back after them), as Frida and the kernel's
 * optprobes do; only if that place cannot be found is the world resumed and stopped again a moment later.
 *
 * <p>Not handled: a thread interrupted among those instructions by a signal whose handler is still running (the
 * place it returns to is in the signal frame on its stack, not in its registers).
 */
public final class Compaction {

    /** Attempts before giving up on a thread that stays where it cannot be moved from (see {@link #move}). */
    private static final int ATTEMPTS = 20;

    /**
     * What one change of state did.
     *
     * @param functions the functions whose state changed
     * @param sites     call sites rewritten (in each process)
     * @param entries   entries rewritten
     * @param pauseMicros how long the world was stopped (the last attempt)
     * @param threads   threads stopped
     * @param attempts  stops it took (more than one when a thread could not be moved out of an entry's bytes)
     * @param moved     threads moved from an entry's first instructions to their copy in its trampoline
     */
    public record Result(List<String> functions, int sites, int entries, long pauseMicros, int threads,
                         int attempts, int moved) {
        static final Result NOTHING = new Result(List.of(), 0, 0, 0, 0, 0, 0);
    }

    private final SessionDir session;
    private final Registry reg;

    Compaction(SessionDir session, Registry reg) {
        this.session = session;
        this.reg = reg;
    }

    /**
     * One write into the text: {@code bytes} at {@code address}. When it puts an entry's jump back over the
     * original instructions, {@code over} says which: a thread stopped among them is moved to their copy.
     */
    private record Edit(long address, byte[] bytes, DisplacedEntry over, String function) {
    }

    /**
     * Puts each of {@code functions} in the given state (those already in it are left alone) with one stop of the
     * world, and records the new state. The caller holds the session lock.
     */
    Result apply(List<FunctionRecord> functions, boolean compact) throws HpvmException {
        return apply(functions.stream().filter(f -> f.compacted() != compact).toList(), compact, null);
    }

    /**
     * For {@code hpvm detach}: every one of {@code functions} compacted, whatever its state, and an entry at version 0
     * given its own bytes: launch recorded them after rewriting the call sites among them to their stubs (so that,
     * put back by a compaction, those calls keep reaching swapped callees), and here they go to the callees again
     * (whose entries jump to their current versions), so that nothing in the text leads to a stub or a slot.
     */
    Result restore(List<FunctionRecord> functions) throws HpvmException {
        Map<Long, Long> entryOfStub = new java.util.HashMap<>();
        for (FunctionRecord fn : functions) {
            entryOfStub.put(fn.stub(), fn.address());
        }
        return apply(functions, true, entryOfStub);
    }

    /** {@code entryOfStub}: restore's stub-to-entry map, or null for an ordinary compaction. */
    private Result apply(List<FunctionRecord> change, boolean compact, Map<Long, Long> entryOfStub)
        throws HpvmException {
        if (change.isEmpty()) {
            return Result.NOTHING;
        }
        SiteTable table = SiteTable.read(session.sites());
        List<Edit> edits = new ArrayList<>();
        int sites = 0;
        int entries = 0;
        try (SlotTable slots = SlotTable.open(session.slots())) {
            for (FunctionRecord fn : change) {
                if (fn.slot() >= table.size()) {
                    throw new SystemException("the call-site table " + session.workerPath("sites") + " has no entry "
                        + "for " + fn.name() + " (slot " + fn.slot() + ")");
                }
                SiteTable.Entry e = table.entry(fn.slot());
                long target = !compact ? fn.stub() : fn.current() == 0 ? fn.address() : slots.get(fn.slot());
                for (long d : e.displacements()) {
                    edits.add(new Edit(d, rel32(d + 4, target, fn), null, fn.name()));
                }
                sites += e.displacements().length;
                if (e.redirected()) {
                    byte[] entry;
                    if (compact && fn.current() == 0) {
                        // The original first instructions: calls through pointers run natively.
                        entry = entryOfStub == null ? e.original() : unstub(e.original(), e.patchAt(), entryOfStub);
                    } else {
                        entry = jump(e.patchAt(), e.original().length, compact ? target : fn.stub(), fn);
                    }
                    // Putting the jump back over the original instructions: a thread stopped after the first moves.
                    boolean over = !compact && fn.current() == 0;
                    edits.add(new Edit(e.patchAt(), entry, over ? new DisplacedEntry(fn.name(), e.patchAt(),
                        e.original(), fn.trampoline()) : null, fn.name()));
                    entries++;
                }
            }
        } catch (IOException e) {
            throw SystemException.io("session files in " + session.dir(), e);
        }
        List<Integer> processes = session.processes();
        if (processes.isEmpty()) {
            throw new HpvmException(ExitCode.NO_SESSION, "the worker of session " + session.dir() + " is not running");
        }
        // The new text is made before the world stops (nothing else writes it: swaps hold the session lock, and a
        // program does not write its own text), so the stop itself is the writes: one per run of adjacent pages.
        List<Span> spans = spans(edits);
        Map<Integer, List<Run>> text = new java.util.LinkedHashMap<>();
        for (int pid : processes) {
            text.put(pid, prepare(pid, spans));
        }
        List<Edit> over = edits.stream().filter(e -> e.over() != null).toList(); // usually none
        long pause = 0;
        int threads = 0;
        int moved = 0;
        int attempt = 1;
        for (; ; attempt++) {
            WorldStop world = WorldStop.stop(processes);
            String busy = null;
            try {
                moved = 0;
                for (WorldStop.StoppedThread t : world.threads()) {
                    for (Edit e : over) {
                        if (e.over().holds(t)) {
                            String why = e.over().moveInto(world, t);
                            moved += why == null ? 1 : 0;
                            busy = busy == null ? why : busy;
                        }
                    }
                }
                if (busy == null) {
                    for (Map.Entry<Integer, List<Run>> p : text.entrySet()) {
                        write(p.getKey(), p.getValue());
                    }
                    threads = world.threads().size();
                }
            } finally {
                world.close();
            }
            if (busy == null) {
                pause = world.micros(); // until the last thread was resumed
                break;
            }
            if (attempt == ATTEMPTS) {
                throw new HpvmException(ExitCode.SYSTEM, busy + " in all " + ATTEMPTS + " attempts; nothing was "
                    + "changed: try again");
            }
            sleep(attempt);
        }
        List<String> names = new ArrayList<>();
        for (FunctionRecord fn : change) {
            reg.putFunction(fn.withCompacted(compact));
            names.add(fn.name());
        }
        return new Result(names, sites, entries, pause, threads, attempt, moved);
    }

    /** {@code bytes} (at {@code at}) with every direct call, jmp or jcc to a stub going to that stub's function. */
    private static byte[] unstub(byte[] bytes, long at, Map<Long, Long> entryOfStub) {
        byte[] out = bytes.clone();
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        try (Decoder decoder = new Decoder()) {
            for (CallSite site : CallSiteScanner.scan(decoder, bytes, at, List.of(new long[] {at, at + bytes.length}),
                entryOfStub::containsKey).sites()) {
                b.putInt((int) (site.displacementAddress() - at), site.displacementTo(entryOfStub.get(site.target())));
            }
        }
        return out;
    }

    /** Adjacent pages of new text, written with one write. */
    private record Run(long address, byte[] bytes) {
    }

    /** A run of adjacent pages the edits touch (the same in every process of the session), and its edits. */
    private record Span(long start, long end, List<Edit> edits) {
    }

    /** The edits grouped into runs of adjacent touched pages; pages without an edit are left out. */
    private static List<Span> spans(List<Edit> edits) {
        List<Edit> sorted = new ArrayList<>(edits);
        sorted.sort(java.util.Comparator.comparingLong(Edit::address));
        List<Span> spans = new ArrayList<>();
        for (Edit e : sorted) {
            long first = e.address() & ~4095L;
            long end = (e.address() + e.bytes().length + 4095) & ~4095L;
            Span last = spans.isEmpty() ? null : spans.get(spans.size() - 1);
            if (last != null && first <= last.end()) {
                last.edits().add(e);
                spans.set(spans.size() - 1, new Span(last.start(), Math.max(last.end(), end), last.edits()));
            } else {
                spans.add(new Span(first, end, new ArrayList<>(List.of(e))));
            }
        }
        return spans;
    }

    /** One process's text with the edits applied, span by span. */
    private static List<Run> prepare(int pid, List<Span> spans) throws SystemException {
        List<Run> runs = new ArrayList<>();
        try (ProcessMemory mem = new ProcessMemory(pid, false)) {
            for (Span span : spans) {
                byte[] bytes = mem.read(span.start(), (int) (span.end() - span.start()));
                for (Edit e : span.edits()) {
                    System.arraycopy(e.bytes(), 0, bytes, (int) (e.address() - span.start()), e.bytes().length);
                }
                runs.add(new Run(span.start(), bytes));
            }
        }
        return runs;
    }

    private static void write(int pid, List<Run> runs) throws SystemException {
        try (ProcessMemory mem = new ProcessMemory(pid, true)) {
            for (Run r : runs) {
                mem.write(r.address(), r.bytes());
            }
        }
    }

    private static byte[] rel32(long next, long target, FunctionRecord fn) throws SystemException {
        try {
            return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(Relocator.rel32(next, target)).array();
        } catch (IllegalArgumentException e) {
            throw outOfRange(next - 5, target, fn, e);
        }
    }

    /** {@code jmp target} padded with int3 to {@code length} bytes, as launch wrote the entry. */
    private static byte[] jump(long at, int length, long target, FunctionRecord fn) throws SystemException {
        try {
            return Relocator.entryJump(at, length, target);
        } catch (IllegalArgumentException e) {
            throw outOfRange(at, target, fn, e);
        }
    }

    private static SystemException outOfRange(long at, long target, FunctionRecord fn, Exception e) {
        return new SystemException("a call site of " + fn.name() + " at " + Elf.hex(at) + " cannot reach "
            + Elf.hex(target) + " with a 32-bit displacement", e);
    }

    private static void sleep(int attempt) throws SystemException {
        try {
            Thread.sleep(Math.min(50, attempt * 2L));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SystemException("interrupted while waiting to stop the worker again", e);
        }
    }

    /** The one-line report of a change of state. */
    public static String describe(Result r, boolean compact) {
        if (r.functions().isEmpty()) {
            return compact ? "nothing to compact: every function named is compacted already"
                : "nothing to route: every function named is routed already";
        }
        return String.format("%s %d function%s (%s): %d call sites and %d entries rewritten; the worker's %s "
                + "stopped for %.2f ms%s", compact ? "compacted" : "routed", r.functions().size(),
            r.functions().size() == 1 ? "" : "s", r.functions().size() <= 5 ? String.join(", ", r.functions())
                : String.join(", ", r.functions().subList(0, 5)) + ", ...", r.sites(), r.entries(),
            r.threads() == 1 ? "thread was" : r.threads() + " threads were",
            r.pauseMicros() / 1000.0, r.attempts() > 1 ? " (after " + (r.attempts() - 1) + " retries: a thread "
                + "was inside an entry being rewritten)" : "") + (r.moved() == 0 ? "" : "; " + r.moved() + " thread"
                + (r.moved() == 1 ? " was" : "s were") + " among an entry's first instructions and continued in "
                + "their copy in the trampoline");
    }
}
