package io.hpvm.runtime.supervisor;

import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.profile.Profile;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.swap.Compaction;
import io.hpvm.runtime.swap.SwapEngine;

import java.io.PrintStream;
import java.util.List;

/**
 * {@code hpvm run --compact=auto[:SECONDS]}: every SECONDS the supervisor samples the worker for one second
 * ({@link Profile}) and compacts the functions that had at least {@link #MIN_SHARE_PERCENT} of the samples and were
 * not swapped or rolled back in the last SECONDS. Driven by the control server's loop on the supervisor's main thread
 * (compaction needs its ptrace rights), without blocking it: sampling runs in the kernel, and the loop only wakes
 * every {@link Profile#POLL_MILLIS} during the one-second window to empty the sample rings.
 */
final class AutoCompaction {

    /** Share of the samples that makes a function hot enough to compact. */
    static final double MIN_SHARE_PERCENT = 0.5;
    /** How long each measurement samples. */
    static final long WINDOW_MILLIS = 1000;

    private final SessionDir session;
    private final long periodMillis;
    private final PrintStream err;
    private Profile sampling;
    private long started;
    private long due;

    AutoCompaction(SessionDir session, long periodMillis, PrintStream err) {
        this.session = session;
        this.periodMillis = periodMillis;
        this.err = err;
        this.due = System.currentTimeMillis() + periodMillis;
    }

    /** Milliseconds until {@link #tick} has work (at least 1). */
    long waitMillis() {
        return Math.max(1, due - System.currentTimeMillis());
    }

    /** Does what is due: start a measurement, empty the rings, or end the measurement and compact. */
    void tick() {
        long now = System.currentTimeMillis();
        if (now < due) {
            return;
        }
        try {
            if (sampling == null) {
                sampling = Profile.start(session, Profile.DEFAULT_HZ);
                started = now;
                due = now + Profile.POLL_MILLIS;
            } else if (now - started < WINDOW_MILLIS) {
                sampling.poll();
                due = now + Profile.POLL_MILLIS;
            } else {
                Profile.Report r;
                try (Profile p = sampling) {
                    sampling = null;
                    r = p.report();
                }
                due = now + periodMillis;
                List<String> hot = r.hot(MIN_SHARE_PERCENT, periodMillis, now).stream().map(FunctionRecord::name)
                    .toList();
                if (!hot.isEmpty()) {
                    Compaction.Result c = new SwapEngine(session).compact(hot, false, true);
                    if (!c.functions().isEmpty()) {
                        err.println("hpvm: --compact=auto: " + Compaction.describe(c, true));
                    }
                }
            }
        } catch (HpvmException | RuntimeException e) {
            close();
            due = now + periodMillis;
            err.println("hpvm: --compact=auto: " + e.getMessage() + " (trying again in " + periodMillis / 1000
                + " s)");
        }
    }

    void close() {
        if (sampling != null) {
            sampling.close();
            sampling = null;
        }
    }
}
