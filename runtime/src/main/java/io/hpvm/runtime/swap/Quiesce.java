package io.hpvm.runtime.swap;

import io.hpvm.asm.Relocator;
import io.hpvm.loader.Elf;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.WorldStop;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.VersionRecord;

import java.util.ArrayList;
import java.util.List;

/**
 * {@code --quiesce}: the slot stores of a swap or rollback happen only at a moment when no thread of the worker is
 * inside the code they replace, for a fix that changes a function's invariants with its callers. Each attempt stops
 * every thread ({@link WorldStop}) and looks at each: its instruction pointer, and the return address of each of its
 * frames, found by unwinding its stack through call frame information ({@link StackWalk}); where that walk cannot go
 * on, the rest of the stack is scanned for words in the old code that follow a call instruction ({@link StackScan}:
 * cautious, as a stale word there also counts). When no thread is in the old code of any function being changed,
 * the stores are made while the world is still stopped; otherwise the world resumes and the attempt is repeated
 * after a pause that doubles up to 100 ms, until the timeout. The old code of a function is what its current version
 * occupies: version 0's body and its trampoline, or the whole image a later version came in (with its patch set's
 * other members and its thunks).
 */
final class Quiesce {

    /**
     * The code one function's current version occupies; {@code entry} is where the function itself begins in it (a
     * patch set's members share one image: an address there is named after the member that begins last before it).
     */
    record Span(String function, int version, long start, long end, long entry) {
        boolean holds(long address) {
            return address >= start && address < end;
        }
    }

    /**
     * A thread found in old code: executing it, or with a return address into it on its stack.
     *
     * @param name    its name ({@code /proc/PID/task/TID/comm}), read once the world runs again ({@link #named})
     * @param scanned why its stack was scanned rather than unwound where the address was found ("" when unwound)
     */
    record Blocker(int pid, int tid, String name, Span span, long address, boolean onStack, String scanned) {
        Blocker(WorldStop.StoppedThread t, Span span, long address, boolean onStack, String scanned) {
            this(t.pid(), t.tid(), "", span, address, onStack, scanned);
        }

        /** This blocker with its thread's name: a file read, so not done while the world is stopped. */
        Blocker named() {
            return new Blocker(pid, tid, ProcFs.comm(pid, tid), span, address, onStack, scanned);
        }

        String describe() {
            return "thread " + tid + " (" + name + ") of pid " + pid + (onStack ? " has a frame in " : " is executing ")
                + span.function() + " v" + span.version() + " (" + (onStack ? "return address " : "at ")
                + Elf.hex(address) + (scanned.isEmpty() ? "" : ", found by scanning its stack: " + scanned) + ")";
        }
    }

    /**
     * How it went.
     *
     * @param attempts        stops of the world
     * @param longestPause    the longest of them, microseconds
     * @param phases          where that one went ({@link WorldStop#phases})
     * @param forcedPast      with {@code --force}, after the timeout: the threads the stores were made in spite of
     * @param stacks          how the last attempt looked at the stacks: all unwound, or which were partly scanned
     */
    record Outcome(int attempts, long longestPause, String phases, List<Blocker> forcedPast, String stacks) {
        String describe() {
            return "quiesced after " + attempts + " attempt" + (attempts == 1 ? "" : "s") + ", longest pause "
                + String.format("%.2f ms", longestPause / 1000.0) + " (" + phases + "); " + stacks
                + (forcedPast.isEmpty() ? "" : "; forced past "
                + String.join(", ", forcedPast.stream().map(Blocker::describe).toList()));
        }
    }

    /** What one attempt found. */
    private record Look(List<Blocker> blockers, String stacks) {
    }

    /** The stores, made with the world stopped. */
    @FunctionalInterface
    interface Store {
        void run() throws HpvmException;
    }

    private Quiesce() {
    }

    /** What the current versions of {@code functions} occupy. */
    private static List<Span> spans(Registry reg, List<FunctionRecord> functions) {
        List<Span> out = new ArrayList<>();
        for (FunctionRecord fn : functions) {
            if (fn.current() == 0) {
                out.add(new Span(fn.name(), 0, fn.address(), fn.address() + Math.max(1, fn.size()), fn.address()));
                if (fn.trampoline() != 0) {
                    out.add(new Span(fn.name(), 0, fn.trampoline(), fn.trampoline() + Relocator.MAX_TRAMPOLINE,
                        fn.trampoline()));
                }
            } else {
                VersionRecord v = reg.version(fn.name(), fn.current());
                out.add(v.codeEnd() > v.codeStart()
                    ? new Span(fn.name(), fn.current(), v.codeStart(), v.codeEnd(), v.address())
                    : new Span(fn.name(), fn.current(), v.address(), v.address() + Math.max(1, v.size()), v.address()));
            }
        }
        return out;
    }

    /**
     * Makes {@code store} run with no thread of the session in the current code of {@code functions}, trying until
     * {@code timeoutMillis}; then, with {@code force}, anyway; without, refuses (exit 6) naming every thread still
     * there.
     */
    static Outcome run(SessionDir session, Registry reg, List<FunctionRecord> functions, long timeoutMillis,
                       boolean force, Store store) throws HpvmException {
        List<Span> spans = spans(reg, functions);
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
        long longest = 0;
        String phases = "";
        for (int attempt = 1; ; attempt++) {
            List<Integer> processes = session.processes();
            if (processes.isEmpty()) {
                throw new HpvmException(ExitCode.NO_SESSION, "the worker of session " + session.dir() + " is not "
                    + "running");
            }
            boolean late = System.nanoTime() > deadline;
            List<Blocker> blockers;
            Look look;
            try (StackScan.Stacks stacks = new StackScan.Stacks(processes)) { // read while the threads run
                StackWalk walker = StackWalk.prepare(stacks, processes, reg);
                walker.rehearse(processes);
                WorldStop world = WorldStop.stop(processes);
                try {
                    look = look(world, spans, stacks, walker);
                    blockers = look.blockers();
                    if (blockers.isEmpty() || late && force) {
                        store.run();
                    }
                } finally {
                    world.close();
                }
                if (world.micros() >= longest) {
                    longest = world.micros();
                    phases = world.phases("look");
                }
            }
            blockers = blockers.stream().map(Blocker::named).toList();
            if (blockers.isEmpty()) {
                return new Outcome(attempt, longest, phases, List.of(), look.stacks());
            }
            if (late) {
                if (force) {
                    return new Outcome(attempt, longest, phases, blockers, look.stacks());
                }
                throw new HpvmException(ExitCode.REFUSED, "nothing was changed: after " + timeoutMillis / 1000.0
                    + " s (" + attempt + " attempt" + (attempt == 1 ? "" : "s") + ", longest pause "
                    + String.format("%.2f ms", longest / 1000.0)
                    + ") a thread was still in the code being replaced: " + String.join("; ", blockers.stream()
                    .map(Blocker::describe).toList()) + ". A function that never returns (a thread's main loop) never "
                    + "quiesces: swap it without --quiesce (calls that start after the swap run the new code), or "
                    + "add --force to swap when the timeout is over anyway");
            }
            sleep(Math.min(100, 1L << Math.min(attempt, 7)));
        }
    }

    /** The threads in old code, at most one entry per thread, and how their stacks were looked at. */
    private static Look look(WorldStop world, List<Span> spans, StackScan.Stacks stacks, StackWalk walker)
        throws SystemException {
        List<Blocker> out = new ArrayList<>();
        List<WorldStop.StoppedThread> threads = world.threads();
        int scanned = 0;
        String firstReason = "";
        for (WorldStop.StoppedThread t : threads) {
            Span at = span(spans, t.rip());
            if (at != null) {
                out.add(new Blocker(t, at, t.rip(), false, ""));
                continue;
            }
            StackWalk.Walk walk = walker.walk(world, t);
            Blocker found = null;
            for (long pc : walk.pcs().subList(1, walk.pcs().size())) {
                Span s = span(spans, pc);
                if (s != null) {
                    found = new Blocker(t, s, pc, true, "");
                    break;
                }
            }
            if (found == null && !walk.complete()) {
                scanned++;
                firstReason = firstReason.isEmpty() ? "thread " + t.tid() + ": " + walk.stoppedBecause() : firstReason;
                ProcessMemory mem = stacks.memory(t.pid());
                StackScan.Hit h = stacks.find(t.pid(), walk.restSp(),
                    w -> span(spans, w) != null && StackScan.afterCall(mem, w));
                if (h != null) {
                    found = new Blocker(t, span(spans, h.word()), h.word(), true, "the walk from its registers "
                        + "stopped at stack pointer " + Elf.hex(walk.restSp()) + ": " + walk.stoppedBecause());
                }
            }
            if (found != null) {
                out.add(found);
            }
        }
        String how = scanned == 0 ? "every stack unwound through its call frame information"
            : scanned + " of " + threads.size() + " stacks partly scanned for return addresses instead of unwound ("
            + firstReason + ")";
        return new Look(out, how);
    }

    private static Span span(List<Span> spans, long address) {
        Span best = null;
        for (Span s : spans) {
            if (s.holds(address) && (best == null || s.entry() <= address && (best.entry() > address
                || s.entry() > best.entry()))) {
                best = s;
            }
        }
        return best;
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
