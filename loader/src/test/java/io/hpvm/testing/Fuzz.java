package io.hpvm.testing;

import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A seeded fuzz loop for JUnit tests: {@code tries} cases, case {@code i} using seed {@code base + i}, each run with
 * a time limit (a hang is a failure too). The base seed is new on every run (printed), so CI keeps exploring; a
 * failure names the case's seed and the command that repeats exactly that case:
 * {@code -Dhpvm.fuzz.seed=S -Dhpvm.fuzz.tries=1}. {@code -Dhpvm.fuzz.tries=N} runs more (or fewer) cases.
 */
public final class Fuzz {

    /** Java's own texts (class names, exception words, buffer messages), which must never reach a user. */
    public static final java.util.regex.Pattern JAVA_TEXT = java.util.regex.Pattern.compile(
        "(java|javax|sun|jdk)\\.[a-z]+\\.|Exception|Error:|out of bounds|newPosition|\\bnull\\b|limit:|"
            + "Index -?\\d+|\\tat ");

    /** One case: throws (an AssertionError) when the property does not hold; returns an outcome to count. */
    @FunctionalInterface
    public interface Case {
        String run(long seed) throws Exception;
    }

    private Fuzz() {
    }

    /** Runs the cases and returns how often each outcome occurred (for a summary line). */
    public static Map<String, Integer> run(String name, int defaultTries, long secondsPerCase, Case property) {
        int tries = Integer.getInteger("hpvm.fuzz.tries", defaultTries);
        long base = Long.getLong("hpvm.fuzz.seed", System.nanoTime() ^ 0x5DEECE66DL);
        System.out.println(name + ": " + tries + " cases from seed " + base);
        Map<String, Integer> outcomes = new TreeMap<>();
        ExecutorService runner = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "fuzz-case");
            t.setDaemon(true);
            return t;
        });
        try {
            for (int i = 0; i < tries; i++) {
                long seed = base + i;
                Future<String> f = runner.submit(() -> property.run(seed));
                String again = " (repeat with -Dhpvm.fuzz.seed=" + seed + " -Dhpvm.fuzz.tries=1)";
                try {
                    outcomes.merge(f.get(secondsPerCase, TimeUnit.SECONDS), 1, Integer::sum);
                } catch (TimeoutException e) {
                    f.cancel(true);
                    throw new AssertionError(name + ": case " + seed + " gave no answer in " + secondsPerCase + " s: "
                        + "something is not bounded" + again);
                } catch (ExecutionException e) {
                    throw new AssertionError(name + ": case " + seed + " failed: " + e.getCause().getMessage() + again,
                        e.getCause());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new AssertionError(e);
                }
            }
        } finally {
            runner.shutdownNow();
        }
        System.out.println(name + ": outcomes " + outcomes);
        return outcomes;
    }
}
