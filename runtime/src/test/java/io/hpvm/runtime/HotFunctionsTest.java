package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What is hot comes from sampling the worker ({@code perf_event_open}): {@code hpvm top} names the function a loop
 * spends its time in, {@code hpvm compact} without names compacts the hot functions and leaves the cold and the
 * recently swapped ones routed, and {@code hpvm run --compact=auto} does it by itself while swaps keep working.
 * Needs perf events (kernel.perf_event_paranoid at most 2, or root): the tests fail saying so otherwise.
 */
class HotFunctionsTest {

    /**
     * spin() calls hot() in a tight loop, and hot() has a loop of its own, so most samples fall in hot() whether its
     * calls go through its stub or not; cold() runs once per printed line.
     * Every line is "k cold(k)", so a swap of cold shows in the output.
     */
    static final String WORKER = """
        #include <stdio.h>
        #include <unistd.h>
        __attribute__((noinline)) long hot(long x) {
            for (int j = 0; j < 8; j++) x = x * 2 + 1 + (x >> 7);
            return x;
        }
        __attribute__((noinline)) long cold(long x) { return x * 2; }
        __attribute__((noinline)) long spin(long n, long seed) {
            long s = seed;
            for (long i = 0; i < n; i++) s = hot(s) ^ (i >> 3);
            return s;
        }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            volatile long sink = 0;
            for (long k = 0; ; k++) {
                sink += spin(60000, k);
                printf("%ld %ld\\n", k, cold(k));
                usleep(1000);
            }
        }
        """;

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    static final Pattern ROW = Pattern.compile("(?m)^\\s*([0-9.]+)%\\s+(\\d+)\\s+([0-9.]+)%\\s+(routed|compacted)\\s+"
        + "v(\\d+)\\s+(\\S+)$");

    @Test
    void topNamesTheFunctionTheLoopSpendsItsTimeIn() {
        Path exe = Gcc.executable(dir, "hot", WORKER, "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            Hpvm.Result top = perf(Hpvm.cmd(sessions(), "top", "--once", "--delay", "1"));
            assertTrue(top.out().startsWith("hpvm top: pid " + w.pid() + ", 1 thread, "), top.out());
            Matcher m = ROW.matcher(top.out());
            assertTrue(m.find(), top.out());
            assertEquals("hot", m.group(6), "the first row is the function the loop spends its time in\n" + top.out());
            assertTrue(Double.parseDouble(m.group(1)) > 30, top.out());
            assertEquals("routed", m.group(4));
            assertTrue(Double.parseDouble(m.group(3)) > 0, "some of hot's samples are in its stub or trampoline\n"
                + top.out());

            Hpvm.Result json = perf(Hpvm.cmd(sessions(), "top", "-n", "2", "--delay", "0.5", "--json"));
            String[] lines = json.out().strip().split("\n");
            assertEquals(2, lines.length, json.out());
            assertTrue(lines[1].matches("\\{\"ok\":true,\"command\":\"top\",\"pid\":" + w.pid() + ",\"threads\":1,"
                + "\"samples\":\\d+,.*\"functions\":\\[\\{\"function\":\"hot\",.*"), lines[1]);

            assertEquals(2, Hpvm.cmd(sessions(), "top", "--delay", "0").code());
        }
    }

    @Test
    void compactWithoutNamesTakesTheHotAndStableFunctionsOnly() {
        Path exe = Gcc.executable(dir, "hot", WORKER, "-O2");
        Path fix = Gcc.object(dir, "hotfix",
            "long hot(long x) { for (int j = 0; j < 8; j++) x = x * 2 + 1 + (x >> 7); return x; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "hot", fix.toString()));
            Hpvm.Result c = perf(Hpvm.cmd(sessions(), "compact", "--sample-for", "1"));
            assertTrue(c.out().contains("(1 more changed in the last 30 s: left routed)"), "hot was just swapped\n"
                + c);
            assertFalse(c.out().matches("(?s).*\\(.*\\bhot\\b.*\\): .*"), c.out());
            String ls = SwapTest.ok(Hpvm.cmd(sessions(), "ls")).out();
            assertTrue(ls.matches("(?s).*\\nhot\\s+v1/1.*entry \\+ call sites\\n.*"), "hot stays routed\n" + ls);

            Hpvm.Result c2 = perf(Hpvm.cmd(sessions(), "compact", "--stable-for", "0"));
            assertTrue(c2.out().matches("compacted \\d functions? \\([^)]*\\bhot\\b[^)]*\\): .*; chosen from \\d+ "
                + "samples in 1\\.\\d s; \\d routed functions? at 0\\.5% or more\\n"), c2.toString());
            ls = SwapTest.ok(Hpvm.cmd(sessions(), "ls")).out();
            assertTrue(ls.matches("(?s).*\\nhot\\s+v1/1.*compacted \\(direct calls\\)\\n.*"), ls);
            assertTrue(ls.matches("(?s).*\\ncold\\s+v0.*entry \\+ call sites\\n.*"), "cold: 0.02% of the time\n" + ls);
            SwapTest.assertBehaviour(w, w.mark(), (k, z) -> k * 2, "compacted");

            // main's own loop gets 0-1% of the samples (printf, usleep): above --min-share 0.5 in some windows, so
            // this step asks for 5%, which only spin and hot reach, and both are compacted now.
            Hpvm.Result again = perf(Hpvm.cmd(sessions(), "compact", "--stable-for", "0", "--min-share", "5"));
            assertTrue(again.out().startsWith("nothing to compact: ")
                && again.out().matches("(?s).*the most sampled: .*\\bhot [0-9.]+% \\(compacted\\).*"),
                again.toString());
            assertEquals(2, Hpvm.cmd(sessions(), "compact", "--undo").code(), "--undo needs names or --all");
        }
    }

    @Test
    void autoCompactionCompactsHotFunctionsWhileSwapsKeepWorking() {
        Path exe = Gcc.executable(dir, "hot", WORKER, "-O2");
        Path fix = Gcc.object(dir, "coldfix", "long cold(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of("--compact=auto:1"), exe)) {
            String line = w.awaitStderr(l -> l.contains("--compact=auto:"), Duration.ofSeconds(30));
            assertTrue(line.matches("hpvm: --compact=auto: compacted \\d functions? \\([^)]*\\bhot\\b.*"), line
                + "\n" + w);
            SwapTest.assertBehaviour(w, w.mark(), (k, z) -> k * 2, "compacted by --compact=auto");
            Hpvm.Result s = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "cold", fix.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (k, z) -> k * 3, "swapped under --compact=auto\n" + s.out());
            assertFalse(w.stderr().contains("error"), w.stderr());
        }
        assertEquals(2, TestWorker.launch(sessions(), List.of("--compact=sometimes"), exe).waitExit(
            Duration.ofSeconds(30)), "a bad --compact value is a usage error");
    }

    /** The result, after checking it did not fail for want of perf events (a machine fact, said plainly). */
    static Hpvm.Result perf(Hpvm.Result r) {
        assertFalse(r.err().contains("perf events are forbidden"), "this machine forbids perf events, which hpvm "
            + "top and compact without names need: " + r.err());
        assertEquals(0, r.code(), r.toString());
        return r;
    }
}
