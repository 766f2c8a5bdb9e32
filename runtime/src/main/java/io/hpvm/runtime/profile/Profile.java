package io.hpvm.runtime.profile;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.PerfSampler;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.SessionDir;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a worker spends its time, by patchable function, measured by sampling its threads' instruction pointers
 * ({@link PerfSampler}) and attributing them with a {@link CodeMap}: what {@code hpvm top} shows and what
 * {@code hpvm compact} without names and {@code hpvm run --compact=auto} call hot. Addresses are counted while
 * sampling and attributed when a report is asked for, so code swapped in meanwhile is named too.
 */
public final class Profile implements AutoCloseable {

    /**
     * Samples per second of each thread's CPU time for {@code hpvm top} and {@code hpvm compact} (perf top's default
     * is 4000). It costs the worker a few percent while it samples on this project's VMs (bench section 6), which a
     * command the user runs for a moment may take; {@code --compact=auto} samples at 100 Hz instead.
     */
    public static final int DEFAULT_HZ = 1000;
    /** How often samples must be taken out of the rings so that none is dropped (4 pages hold 0.68 s at 1 kHz). */
    public static final long POLL_MILLIS = 100;

    /** One function's samples: all of them, and those in its dispatch code (stub, trampoline, thunk). */
    public record Row(FunctionRecord function, long samples, long dispatch) {
    }

    /**
     * What a window of sampling saw.
     *
     * @param rows    functions with samples, the most sampled first
     * @param total   samples of user code, wherever they fell
     * @param outside samples outside every patchable function (libraries, the dynamic loader, PLT)
     */
    public record Report(List<Row> rows, long total, long outside, int threads, long lost, double seconds, int hz) {

        public double share(Row r) {
            return total == 0 ? 0 : 100.0 * r.samples() / total;
        }

        /**
         * The functions worth compacting: at least {@code minSharePercent} of the samples, routed now, and not
         * swapped or rolled back for {@code stableMillis}.
         */
        public List<FunctionRecord> hot(double minSharePercent, long stableMillis, long nowMillis) {
            return candidates(minSharePercent).stream()
                .filter(fn -> fn.changed() == 0 || nowMillis - fn.changed() >= stableMillis).toList();
        }

        /** The routed functions with at least {@code minSharePercent} of the samples, stable or not. */
        public List<FunctionRecord> candidates(double minSharePercent) {
            return rows.stream().filter(r -> share(r) >= minSharePercent && !r.function().compacted())
                .map(Row::function).toList();
        }
    }

    private final SessionDir session;
    private final PerfSampler sampler;
    private final Map<Long, long[]> counts = new HashMap<>();
    private long since = System.nanoTime();
    private long lostBefore;

    private Profile(SessionDir session, PerfSampler sampler) {
        this.session = session;
        this.sampler = sampler;
    }

    /** Starts sampling every thread of the session's processes. */
    public static Profile start(SessionDir session, int hz) throws HpvmException {
        List<Integer> pids = session.processes();
        if (pids.isEmpty()) {
            throw new HpvmException(ExitCode.NO_SESSION, "the worker of session " + session.dir() + " is not running");
        }
        return new Profile(session, PerfSampler.start(pids, hz));
    }

    /** Samples for {@code seconds} (blocking) and reports. */
    public static Report measure(SessionDir session, double seconds, int hz) throws HpvmException {
        try (Profile p = start(session, hz)) {
            return p.sampleFor(seconds);
        }
    }

    /** Samples for {@code seconds} more (blocking, emptying the rings as needed) and reports the window. */
    public Report sampleFor(double seconds) throws HpvmException {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        for (long left; (left = end - System.nanoTime()) > 0; ) {
            sleep(Math.min(POLL_MILLIS, left / 1_000_000 + 1));
            poll();
        }
        return report();
    }

    /** Takes the samples out of the rings (call at least every {@link #POLL_MILLIS}), following new threads. */
    public void poll() throws SystemException {
        sampler.rescan();
        sampler.drain(ip -> counts.computeIfAbsent(ip, k -> new long[1])[0]++);
    }

    /** Attributes what was sampled since the last report (or the start) and starts a new window. */
    public Report report() throws HpvmException {
        poll();
        long now = System.nanoTime();
        CodeMap map = CodeMap.of(session);
        long[] samples = new long[map.functions().size()];
        long[] dispatch = new long[samples.length];
        long total = 0;
        long outside = 0;
        for (Map.Entry<Long, long[]> e : counts.entrySet()) {
            long n = e.getValue()[0];
            total += n;
            CodeMap.Place at = map.at(e.getKey());
            if (at == null) {
                outside += n;
            } else {
                samples[at.function()] += n;
                if (at.dispatch()) {
                    dispatch[at.function()] += n;
                }
            }
        }
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < samples.length; i++) {
            if (samples[i] > 0) {
                rows.add(new Row(map.functions().get(i), samples[i], dispatch[i]));
            }
        }
        rows.sort(Comparator.comparingLong(Row::samples).reversed().thenComparing(r -> r.function().name()));
        Report r = new Report(rows, total, outside, sampler.threads(), sampler.lost() - lostBefore,
            (now - since) / 1e9, sampler.hz());
        counts.clear();
        since = now;
        lostBefore = sampler.lost();
        return r;
    }

    private static void sleep(long millis) throws SystemException {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SystemException("interrupted while sampling the worker", e);
        }
    }

    @Override
    public void close() {
        sampler.close();
    }
}
