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
 * every thread ({@link WorldStop}) and looks at each: its instruction pointer, and the return addresses on its stack
 * ({@link StackScan}: words in the old code that follow a call instruction). When none is in the old code of any
 * function being changed, the stores are made while the world is still stopped; otherwise the world resumes and the
 * attempt is repeated after a pause that doubles up to 100 ms, until the timeout. The old code of a function is
 * what its current version occupies: version 0's body and its trampoline, or the whole image a later version came
 * in (with its patch set's other members and its thunks).
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

    /** A thread found in old code: executing it, or with a return address into it on its stack. */
    record Blocker(int pid, int tid, String name, Span span, long address, boolean onStack) {
        String describe() {
            return "thread " + tid + " (" + name + ") of pid " + pid + (onStack ? " has a frame in " : " is executing ")
                + span.function() + " v" + span.version() + " (" + (onStack ? "return address " : "at ")
                + Elf.hex(address) + ")";
        }
    }

    /**
     * How it went.
     *
     * @param attempts        stops of the world
     * @param longestPause    the longest of them, microseconds
     * @param forcedPast      with {@code --force}, after the timeout: the threads the stores were made in spite of
     */
    record Outcome(int attempts, long longestPause, List<Blocker> forcedPast) {
        String describe() {
            return "quiesced after " + attempts + " attempt" + (attempts == 1 ? "" : "s") + ", longest pause "
                + String.format("%.2f ms", longestPause / 1000.0) + (forcedPast.isEmpty() ? ""
                : "; forced past " + String.join(", ", forcedPast.stream().map(Blocker::describe).toList()));
        }
    }

    /** The stores, made with the world stopped. */
    @FunctionalInterface
    interface Store {
        void run() throws HpvmException;
    }

    private Quiesce() {
    }

    /** What the current versions of {@code functions} occupy. */
    static List<Span> spans(Registry reg, List<FunctionRecord> functions) {
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
     * Makes {@code store} run with no thread of the session in {@code spans}, trying until {@code timeoutMillis};
     * then, with {@code force}, anyway; without, refuses (exit 6) naming every thread still there.
     */
    static Outcome run(SessionDir session, List<Span> spans, long timeoutMillis, boolean force, Store store)
        throws HpvmException {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
        long longest = 0;
        for (int attempt = 1; ; attempt++) {
            List<Integer> processes = session.processes();
            if (processes.isEmpty()) {
                throw new HpvmException(ExitCode.NO_SESSION, "the worker of session " + session.dir() + " is not "
                    + "running");
            }
            boolean late = System.nanoTime() > deadline;
            List<Blocker> blockers;
            try (StackScan.Stacks stacks = new StackScan.Stacks(processes)) { // read while the threads run
                WorldStop world = WorldStop.stop(processes);
                try {
                    blockers = blockers(world, spans, stacks);
                    if (blockers.isEmpty() || late && force) {
                        store.run();
                    }
                } finally {
                    world.close();
                }
                longest = Math.max(longest, world.micros());
            }
            if (blockers.isEmpty()) {
                return new Outcome(attempt, longest, List.of());
            }
            if (late) {
                if (force) {
                    return new Outcome(attempt, longest, blockers);
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

    /** The threads in old code, at most one entry per thread. */
    private static List<Blocker> blockers(WorldStop world, List<Span> spans, StackScan.Stacks stacks)
        throws SystemException {
        List<Blocker> out = new ArrayList<>();
        for (WorldStop.StoppedThread t : world.threads()) {
            Span at = span(spans, t.rip());
            if (at != null) {
                out.add(new Blocker(t.pid(), t.tid(), ProcFs.comm(t.pid(), t.tid()), at, t.rip(), false));
                continue;
            }
            ProcessMemory mem = stacks.memory(t.pid());
            StackScan.Hit h = stacks.find(t, w -> span(spans, w) != null && StackScan.afterCall(mem, w));
            if (h != null) {
                out.add(new Blocker(t.pid(), t.tid(), ProcFs.comm(t.pid(), t.tid()), span(spans, h.word()), h.word(),
                    true));
            }
        }
        return out;
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
