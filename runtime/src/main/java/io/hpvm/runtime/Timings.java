package io.hpvm.runtime;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Wall-clock time per phase of a command, for {@code --timings} and the bench report. Each {@link #mark} closes
 * the phase that started at the previous mark.
 */
public final class Timings {

    private final long start = System.nanoTime();
    private long last = start;
    private final Map<String, Long> phases = new LinkedHashMap<>();

    /** Ends the current phase under {@code name} (adding to it if it ran before). */
    public void mark(String name) {
        long now = System.nanoTime();
        phases.merge(name, now - last, Long::sum);
        last = now;
    }

    /** Microseconds spent in each phase, in order. */
    public Map<String, Long> micros() {
        Map<String, Long> out = new LinkedHashMap<>();
        phases.forEach((k, v) -> out.put(k, v / 1000));
        return out;
    }

    public long totalMicros() {
        return (last - start) / 1000;
    }

    /** "phase=1.2ms phase2=0.3ms total=1.5ms". */
    public String describe() {
        StringBuilder b = new StringBuilder();
        phases.forEach((k, v) -> b.append(k).append('=').append(String.format("%.2fms ", v / 1e6)));
        return b.append(String.format("total=%.2fms", (last - start) / 1e6)).toString();
    }
}
