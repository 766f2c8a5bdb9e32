package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The real profiler and debugger name patched code: perf through {@code /tmp/perf-PID.map} (the code region is a
 * System V segment, which perf looks up there), gdb through its JIT interface.
 */
class ProfilerNamesTest {

    /** fee() is where the time goes: perf's samples land in it, and gdb finds a thread in it. */
    static final String PROGRAM = """
        #include <stdio.h>
        __attribute__((noinline)) long fee(long n) {
            volatile long s = 0;
            for (long i = 0; i < n; i++) s += i * 3;
            return s;
        }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (long i = 0; ; i++) { long f = fee(4000000); printf("%ld %ld\\n", i, f % 1000); }
        }
        """;

    static final String FIX = """
        long fee(long n)
        {
            volatile long s = 0;
            for (long i = 0; i < n; i++)
                s += i * 5;
            return s;
        }
        """;

    @TempDir
    Path dir;

    record Run(int exit, String out) {
    }

    /** A command started with its output read as it comes (it never blocks on a full pipe). */
    static final class Started {
        final Process process;
        private final Thread reader;
        private volatile byte[] out = new byte[0];

        Started(List<String> cmd) throws IOException {
            process = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            reader = new Thread(() -> {
                try {
                    out = process.getInputStream().readAllBytes();
                } catch (IOException e) {
                    // what was read so far is what there is
                }
            });
            reader.start();
        }

        /** Waits up to {@code seconds} for the end (then kills it); exit status (-1 when killed) and output. */
        Run finish(int seconds) throws InterruptedException {
            if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
            reader.join(10_000);
            return new Run(process.isAlive() ? -1 : process.exitValue(), new String(out, StandardCharsets.UTF_8));
        }
    }

    static Run run(List<String> cmd, int seconds) throws IOException, InterruptedException {
        return new Started(cmd).finish(seconds);
    }

    /** perf report's lines for {@code seconds} of samples of process {@code pid}. */
    List<String> perfReport(int pid, int seconds) throws Exception {
        Path data = dir.resolve("perf-" + System.nanoTime() + ".data");
        Run rec = run(List.of("perf", "record", "-q", "-e", "cpu-clock", "-p", Integer.toString(pid), "-o",
            data.toString(), "--", "sleep", Integer.toString(seconds)), seconds + 30);
        assertTrue(rec.exit() == 0 && Files.size(data) > 0, "perf record: " + rec);
        Run rep = run(List.of("perf", "report", "-i", data.toString(), "--stdio", "--sort", "dso,sym"), 60);
        assertTrue(rep.exit() == 0, "perf report: " + rep);
        List<String> lines = new ArrayList<>();
        for (String l : rep.out().split("\n")) {
            if (!l.isBlank() && !l.startsWith("#")) {
                lines.add(l.trim());
            }
        }
        return lines;
    }

    /** The line of the busiest symbol: perf report sorts by overhead. */
    static String top(List<String> report) {
        return report.isEmpty() ? "(no samples)" : report.get(0);
    }

    static void assumePerf() throws Exception {
        Run v = run(List.of("perf", "--version"), 30);
        assumeTrue(v.exit() == 0, "SKIPPED: perf is not installed (apt-get install -y linux-perf): " + v.out());
        String paranoid = Files.readString(Path.of("/proc/sys/kernel/perf_event_paranoid")).trim();
        assumeTrue(io.hpvm.runtime.linux.LibC.INSTANCE.geteuid() == 0 || Integer.parseInt(paranoid) <= 1,
            "SKIPPED: perf may not sample other processes here (kernel.perf_event_paranoid = " + paranoid
                + "; run as root or set it to 1)");
    }

    @Test
    void perfNamesTheOriginalThenThePatchedVersion() throws Exception {
        assumePerf();
        Path exe = Gcc.executable(dir, "prog", PROGRAM, "-O1");
        Path fix = Gcc.object(dir.resolve("fix"), "fee_v2", FIX, "-O1", "-g");
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            Path map = Path.of("/tmp/perf-" + w.pid() + ".map");
            String before = Files.readString(map);
            assertTrue(before.matches("(?s)[0-9a-f]+ 10 fee \\[hpvm stub\\]\n.*"), before);
            assertTrue(top(perfReport(w.pid(), 1)).matches(".*\\bprog +\\[\\.\\] fee$"),
                "the original is named from the executable: " + perfReport(w.pid(), 1));

            SwapTest.ok(Hpvm.cmd(sessions, "swap", "fee", fix.toString()));
            String after = Files.readString(map);
            assertTrue(after.startsWith(before) && after.substring(before.length()).matches(
                "[0-9a-f]+ [0-9a-f]+ fee \\[hpvm v1\\]\n"), "a swap appends its version:\n" + after);
            List<String> report = perfReport(w.pid(), 1);
            assertTrue(top(report).matches(".*\\[JIT\\] tid " + w.pid() + " +\\[\\.\\] fee \\[hpvm v1\\]$"),
                "perf names the version in the code region:\n" + String.join("\n", report));
        }
    }

    @Test
    void gdbNamesThePatchedFunctionAndItsSourceLine() throws Exception {
        Run v = run(List.of("gdb", "--version"), 30);
        assumeTrue(v.exit() == 0, "SKIPPED: gdb is not installed (apt-get install -y gdb): " + v.out());
        Path exe = Gcc.executable(dir, "prog", PROGRAM, "-O1");
        Path fix = Gcc.object(dir.resolve("fix"), "fee_v2", FIX, "-O1", "-g");
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            assertTrue(!w.stderr().contains("gdb will not name"), w.stderr());
            SwapTest.ok(Hpvm.cmd(sessions, "swap", "fee", fix.toString()));
            // fee() is where the worker spends its time; a stop elsewhere (in write, say) is retried.
            String frame = "";
            for (int attempt = 0; attempt < 5 && !frame.contains(" fee "); attempt++) {
                Run bt = run(List.of("gdb", "-nx", "-batch", "-p", Integer.toString(w.pid()), "-ex", "bt 1"), 120);
                assertTrue(bt.exit() == 0, "gdb: " + bt);
                frame = bt.out().lines().filter(l -> l.startsWith("#0")).findFirst().orElse(bt.out());
            }
            assertTrue(frame.matches("#0 +(0x[0-9a-f]+ in )?fee \\(n=4000000\\) at \\S*fix/fee_v2\\.c:[45]"),
                "gdb names the patched version and its line: " + frame);
            w.awaitLines(w.mark(), 2, SwapTest.WAIT); // the worker runs on once gdb has detached
        }
    }

    /**
     * A gdb attached before the swap is told of the new code: hpvm's agent thread (a worker with an unwinder has
     * one) calls {@code __jit_debug_register_code}, where gdb keeps a breakpoint.
     */
    @Test
    void aGdbAttachedBeforeTheSwapIsToldOfTheNewCode() throws Exception {
        Run v = run(List.of("gdb", "--version"), 30);
        assumeTrue(v.exit() == 0, "SKIPPED: gdb is not installed (apt-get install -y gdb): " + v.out());
        Path exe = Gcc.executable(dir, "prog", PROGRAM, "-O1", "-Wl,--no-as-needed", "-lgcc_s");
        Path fix = Gcc.object(dir.resolve("fix"), "fee_v2", FIX, "-O1", "-g");
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            assertTrue(w.stderr().contains("(hpvm-agent)"), "the worker has hpvm's agent thread: " + w.stderr());
            Started gdb = new Started(List.of("gdb", "-nx", "-batch", "-p", Integer.toString(w.pid()), "-ex",
                "continue", "-ex", "bt 1"));
            Run bt;
            try {
                long deadline = System.nanoTime() + 60_000_000_000L;
                while (io.hpvm.runtime.linux.ProcFs.status(w.pid(), "TracerPid").equals("0")
                    && System.nanoTime() < deadline) {
                    Thread.sleep(100);
                }
                Thread.sleep(1000); // gdb has read the process and continues it
                Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions, "swap", "fee", fix.toString()));
                assertTrue(!r.err().contains("warning"), r.toString());
                Thread.sleep(500);
            } finally {
                new ProcessBuilder("kill", "-INT", Long.toString(gdb.process.pid())).start().waitFor();
                bt = gdb.finish(60);
            }
            String text = bt.out();
            String frame = text.lines().filter(l -> l.startsWith("#0")).findFirst().orElse(text);
            assertTrue(frame.matches("#0 +(0x[0-9a-f]+ in )?fee \\(n=4000000\\) at \\S*fix/fee_v2\\.c:[45]"),
                "gdb, attached before the swap, names the new version: " + frame + "\n" + text);
            w.awaitLines(w.mark(), 2, SwapTest.WAIT); // the worker runs on once gdb has detached
        }
    }
}
