package io.hpvm.testing;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * The lines a child process writes to one stream, collected by a daemon thread as they come, with waits for a
 * line or a number of lines. Shared by the runtime tests (TestWorker) and the bench harness.
 */
public final class Lines {

    private final List<String> lines = new ArrayList<>();

    private Lines() {
    }

    /** Starts collecting {@code in} until it ends. */
    public static Lines of(InputStream in) {
        Lines l = new Lines();
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (l.lines) {
                        l.lines.add(line);
                        l.lines.notifyAll();
                    }
                }
            } catch (IOException ignored) {
                // the process ended
            }
        });
        t.setDaemon(true);
        t.start();
        return l;
    }

    /** Lines so far: pass it to the waits to look only at later lines. */
    public int size() {
        synchronized (lines) {
            return lines.size();
        }
    }

    /** Waits for a line at index >= {@code from} matching {@code p}; throws IllegalStateException on timeout. */
    public String await(int from, Predicate<String> p, long timeoutMs) {
        int i = awaitIndex(from, p, timeoutMs);
        synchronized (lines) {
            return lines.get(i);
        }
    }

    /** Like {@link #await(int, Predicate, long)}, returning the line's index. */
    public int awaitIndex(int from, Predicate<String> p, long timeoutMs) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        synchronized (lines) {
            int i = from;
            while (true) {
                for (; i < lines.size(); i++) {
                    if (p.test(lines.get(i))) {
                        return i;
                    }
                }
                waitUntil(deadline, "a matching line");
            }
        }
    }

    /** Waits until there are {@code count} lines past {@code from} and returns them. */
    public List<String> await(int from, int count, long timeoutMs) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        synchronized (lines) {
            while (lines.size() < from + count) {
                waitUntil(deadline, count + " lines");
            }
            return new ArrayList<>(lines.subList(from, from + count));
        }
    }

    private void waitUntil(long deadline, String what) {
        long left = deadline - System.currentTimeMillis();
        if (left <= 0) {
            throw new IllegalStateException("timed out waiting for " + what);
        }
        try {
            lines.wait(left);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted waiting for " + what, e);
        }
    }

    /** Every line so far. */
    public List<String> all() {
        synchronized (lines) {
            return new ArrayList<>(lines);
        }
    }

    /** The last {@code n} lines, joined. */
    public String tail(int n) {
        synchronized (lines) {
            return String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
        }
    }
}
