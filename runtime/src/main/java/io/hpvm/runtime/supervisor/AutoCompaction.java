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
 * {@code hpvm run --compact=auto[:SECONDS]}: every SECONDS the supervisor samples the worker ({@link Profile}) at
 * {@link #HZ} for {@link #windowMillis} and compacts the functions that had at least {@link #MIN_SHARE_PERCENT} of the
 * samples and were not swapped or rolled back in the last SECONDS. Driven by the control server's loop on the
 * supervisor's main thread (compaction needs its ptrace rights), without blocking it: sampling runs in the kernel, and
 * the loop only wakes every {@link Profile#POLL_MILLIS} during the window to empty the sample rings.
 *
 * <p>Why 100 Hz for a longer window rather than {@code hpvm top}'s 1 kHz for one second: each sample is a timer
 * interrupt in the worker's thread, and what it costs is the platform's, not hpvm's. On this project's VMs
 * {@code perf record -e cpu-clock -F 1000} costs a native loop +1.7% (median of 9 alternating runs), and hpvm's
 * sampling at 1 kHz costs about as much or more (bench section 6): more than a background measurement may take
 * (issue 11: at most 1%). At 100 Hz a 5-second window still
 * gives 500 samples per busy thread, enough to tell a function with 0.5% of them, and costs a tenth as much.
 */
final class AutoCompaction {

    /** Share of the samples that makes a function hot enough to compact. */
    static final double MIN_SHARE_PERCENT = 0.5;
    /** Samples per second of each thread's CPU time while measuring. */
    static final int HZ = 100;
    /** The longest measurement: 500 samples of a busy thread at {@link #HZ}. */
    static final long MAX_WINDOW_MILLIS = 5000;

    private final SessionDir session;
    private final long periodMillis;
    private final long windowMillis;
    private final PrintStream err;
    private Profile sampling;
    private long started;
    private long due;

    AutoCompaction(SessionDir session, long periodMillis, PrintStream err) {
        this.session = session;
        this.periodMillis = periodMillis;
        this.windowMillis = windowMillis(periodMillis);
        this.err = err;
        this.due = System.currentTimeMillis() + periodMillis;
    }

    /** How long each measurement samples: half the period, at least one second and at most 5. */
    static long windowMillis(long periodMillis) {
        return Math.max(1000, Math.min(MAX_WINDOW_MILLIS, periodMillis / 2));
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
                sampling = Profile.start(session, HZ);
                started = now;
                due = now + Profile.POLL_MILLIS;
            } else if (now - started < windowMillis) {
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
