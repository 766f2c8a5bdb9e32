package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * hpvm's agent thread: started at launch in a worker that can unwind (libgcc_s loaded), it registers a patch's
 * unwind information so that no thread of the program is paused for it, even when the program's only thread spins
 * and never waits in a system call. The worker here is C linked with libgcc_s; its function {@code depth()} prints
 * how deep {@code backtrace()} (libgcc's unwinder) sees the stack, which is only as deep from the new version as from
 * the original when the new version's unwind information was registered.
 */
class WorkerAgentTest {

    static final String WORKER = """
        #include <execinfo.h>
        #include <stdio.h>
        volatile long sink;
        __attribute__((noinline)) int depth(int i) { void *f[64]; return backtrace(f, 64) * 100 + 1; }
        __attribute__((noinline)) int step(int i) { int d = depth(i); sink += d; return d; }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (int i = 0; ; i++) {
                printf("%d depth %d\\n", i, step(i));
                for (volatile long k = 0; k < 3000000; k++) { }   /* spins: never waits in a system call */
            }
        }
        """;

    @TempDir
    Path dir;

    /** The tid of the worker's thread named hpvm-agent; fails when there is none. */
    static int agentThread(int pid) {
        Map<Integer, String> threads = threads(pid);
        for (var t : threads.entrySet()) {
            if (t.getValue().equals("hpvm-agent")) {
                return t.getKey();
            }
        }
        throw new AssertionError("worker " + pid + " has no hpvm-agent thread: " + threads);
    }

    /** Thread id -> name of each thread of {@code pid}. */
    static Map<Integer, String> threads(int pid) {
        Map<Integer, String> out = new TreeMap<>();
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path t : tasks.toList()) {
                out.put(Integer.parseInt(t.getFileName().toString()), Files.readString(t.resolve("comm")).trim());
            }
        } catch (IOException e) {
            throw new AssertionError("cannot list the threads of " + pid + ": " + e, e);
        }
        return out;
    }

    Path worker() {
        return Gcc.executable(dir, "spin", WORKER, "-O2", "-Wl,--no-as-needed", "-lgcc_s");
    }

    Path patch() {
        return Gcc.object(dir, "depth_v1", WORKER.replace("* 100 + 1", "* 100 + 2"), "-O2");
    }

    /** The depth the original version reports (stable from one line to the next). */
    static int originalDepth(TestWorker w) {
        String line = w.awaitLines(w.mark(), 1, SwapTest.WAIT).get(0);
        int v = Integer.parseInt(line.substring(line.lastIndexOf(' ') + 1));
        assertEquals(1, v % 100, line);
        assertTrue(v / 100 >= 4, "backtrace sees depth, step, main and libc's start: " + line);
        return v / 100;
    }

    /** The depth the new version reports, from the lines after the swap. */
    static int newDepth(TestWorker w, int mark) {
        int at = w.awaitLineIndex(mark, l -> l.endsWith("2"), SwapTest.WAIT);
        String line = w.awaitLines(at, 1, SwapTest.WAIT).get(0);
        return Integer.parseInt(line.substring(line.lastIndexOf(' ') + 1)) / 100;
    }

    @Test
    void registeredByTheAgentWithNoThreadOfTheProgramPaused() {
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), worker())) {
            int depth = originalDepth(w);
            Map<Integer, String> threads = threads(w.pid());
            assertEquals(2, threads.size(), "the program's thread and hpvm's: " + threads);
            int agent = agentThread(w.pid());
            assertTrue(w.stderr().contains("agent thread " + agent + " (hpvm-agent)"), w.toString());
            int mark = w.mark();
            Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions, "swap", "depth", patch().toString()));
            assertTrue(r.out().contains("unwind info registered by hpvm's agent thread " + agent + " in ")
                && r.out().contains("(no worker thread paused)"), r.toString());
            assertEquals(depth, newDepth(w, mark), "the unwinder walks out of the new version\n" + w);
            // A second swap reuses the page of struct objects the agent mapped for the first.
            mark = w.mark();
            SwapTest.ok(Hpvm.cmd(sessions, "swap", "depth", patch().toString()));
            assertEquals(depth, newDepth(w, mark), "and out of the one after it\n" + w);
            assertEquals(threads, threads(w.pid()), "no thread came or went");
        }
    }

    /** The check above can fail: without registration, backtrace() stops at the new version. */
    @Test
    void withoutRegistrationTheUnwinderStopsAtTheNewVersion() {
        Path sessions = dir.resolve("sessions_none");
        try (TestWorker w = TestWorker.start(sessions, List.of(), worker())) {
            int depth = originalDepth(w);
            int mark = w.mark();
            SwapTest.ok(Hpvm.cmd(sessions, "swap", "--no-unwind-info", "depth", patch().toString()));
            int now = newDepth(w, mark);
            assertTrue(now < depth, "depth " + now + " from unregistered code, " + depth + " before\n" + w);
        }
    }

    /** A program that cannot unwind keeps exactly its own threads; --no-agent does the same for one that can. */
    @Test
    void onlyWorkersThatCanUnwindGetTheAgent() {
        Path plain = Gcc.executable(dir, "plain", SwapTest.LOOP_WORKER, "-O2");
        try (TestWorker w = TestWorker.start(dir.resolve("s1"), List.of(), plain)) {
            assertEquals(1, threads(w.pid()).size(), threads(w.pid()).toString());
        }
        Path sessions = dir.resolve("s2");
        try (TestWorker w = TestWorker.start(sessions, List.of("--no-agent"), worker())) {
            int depth = originalDepth(w);
            assertEquals(1, threads(w.pid()).size(), threads(w.pid()).toString());
            int mark = w.mark();
            Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions, "swap", "depth", patch().toString()));
            assertTrue(r.out().contains("unwind info registered by borrowed thread " + w.pid()), r.toString());
            assertEquals(depth, newDepth(w, mark), w.toString());
        }
    }

    /** The agent reads end of file when its supervisor is gone and ends: the program is left with its own threads. */
    @Test
    void theAgentEndsWithItsSupervisor() {
        try (TestWorker w = TestWorker.startOrphanable(dir.resolve("s3"), worker())) {
            int agent = agentThread(w.pid());
            SupervisorKilledTest.killSupervisor(w);
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (threads(w.pid()).containsKey(agent) && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            assertEquals(1, threads(w.pid()).size(), threads(w.pid()).toString());
            originalDepth(w); // still running
        }
    }
}
