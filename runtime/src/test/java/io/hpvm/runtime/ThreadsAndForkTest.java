package io.hpvm.runtime;

import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.swap.SwapEngine;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Swaps under concurrency: many threads calling the function, and forked children sharing the session. */
class ThreadsAndForkTest {

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    /**
     * 8 threads call compute() in tight loops while it is switched between two versions 10,000 times. Every result
     * must be one that either version computes, and after the last switch every thread runs the last version.
     */
    @Test
    void eightThreadsSeeOnlyWholeVersions() throws Exception {
        Path exe = Gcc.executable(dir, "threads", """
            #include <pthread.h>
            #include <stdio.h>
            #include <string.h>
            __attribute__((noinline)) long compute(long x) { return x * 2; }
            static long bad, calls;
            static volatile int seen[8];
            static void *run(void *arg) {
                long id = (long) arg;
                for (long i = 1; ; i++) {
                    long r = compute(i);
                    if (r == 2 * i) seen[id] = 2;
                    else if (r == 3 * i) seen[id] = 3;
                    else __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
                    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
                }
                return NULL;
            }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                pthread_t t[8];
                for (long k = 0; k < 8; k++) pthread_create(&t[k], NULL, run, (void *) k);
                char line[32];
                puts("started");
                while (fgets(line, sizeof line, stdin)) {
                    if (strncmp(line, "reset", 5) == 0) { memset((void *) seen, 0, sizeof seen); puts("ok"); }
                    else printf("bad %ld calls %ld seen %d%d%d%d%d%d%d%d\\n", __atomic_load_n(&bad, 0),
                        __atomic_load_n(&calls, 0), seen[0], seen[1], seen[2], seen[3], seen[4], seen[5], seen[6],
                        seen[7]);
                }
                return 0;
            }
            """, "-O2", "-pthread");
        Path times3 = Gcc.object(dir, "times3", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            w.awaitLine(0, "started"::equals, Duration.ofSeconds(20));
            System.setProperty("hpvm.session.root", sessions().toString());
            SwapEngine engine = new SwapEngine(SessionDir.find(w.pid()));
            engine.swap("compute", times3);
            for (int i = 0; i < 10_000; i++) {
                engine.rollback("compute", i % 2 == 0 ? 0 : 1);
            }
            // The last switch (i = 9999) went to version 1: x * 3.
            try (OutputStream in = w.supervisor().getOutputStream()) {
                int mark = w.mark();
                in.write("reset\n".getBytes(StandardCharsets.UTF_8));
                in.flush();
                w.awaitLine(mark, "ok"::equals, Duration.ofSeconds(10));
                Thread.sleep(300);
                mark = w.mark();
                in.write("status\n".getBytes(StandardCharsets.UTF_8));
                in.flush();
                String status = w.awaitLine(mark, l -> l.startsWith("bad "), Duration.ofSeconds(10));
                String[] f = status.split(" ");
                assertEquals("0", f[1], "no call returned something neither version computes: " + status);
                assertTrue(Long.parseLong(f[3]) > 100_000, "the threads were calling all along: " + status);
                assertEquals("33333333", f[5], "every thread runs the last version: " + status);
            }
        }
    }

    /** A pre-forking server: the children share the slots and code, so one swap patches all of them. */
    @Test
    void forkedChildrenArePatchedByOneSwap() throws Exception {
        Path exe = Gcc.executable(dir, "prefork", """
            #include <stdio.h>
            #include <stdlib.h>
            #include <unistd.h>
            #include <sys/prctl.h>
            #include <sys/wait.h>
            #include <signal.h>
            __attribute__((noinline)) long compute(long x) { return x * 2; }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (int k = 0; k < 3; k++) {
                    if (fork() == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        for (long i = 0; ; i++) { printf("%d %ld %ld\\n", k, i, compute(i)); usleep(20000); }
                    }
                }
                if (fork() == 0) { execl("/bin/sleep", "sleep", "30", (char *) NULL); _exit(1); }
                while (wait(NULL) > 0) { }
                return 0;
            }
            """, "-O2");
        Path times3 = Gcc.object(dir, "times3f", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            w.awaitLines(0, 9, Duration.ofSeconds(20));
            Hpvm.Result ls = Hpvm.cmd(sessions(), "ls");
            assertTrue(ls.out().contains("processes sharing this session"), ls.toString());
            String procs = ls.out().replaceAll("(?s).*forked children\\): ([0-9, ]+)\\n.*", "$1");
            assertEquals(4, procs.split(", ").length, "the worker and its 3 children, not the child that exec'd: "
                + ls.out());
            assertEquals(0, Hpvm.cmd(sessions(), "swap", "compute", times3.toString()).code());
            assertEveryChild(w, 3, "after the swap");
        }
    }

    /**
     * Compaction in a pre-forked server: each process has its own copy of the text (the first write made it
     * private), so every process of the session is stopped and rewritten, and all of them are in the same state:
     * checked in each child's memory and by what each child prints, directly and through a pointer (the entry).
     */
    @Test
    void forkedChildrenShareEachChangeOfState() throws Exception {
        Path exe = Gcc.executable(dir, "prefork2", """
            #include <stdio.h>
            #include <signal.h>
            #include <sys/prctl.h>
            #include <sys/wait.h>
            #include <unistd.h>
            __attribute__((noinline)) long compute(long x) { return x * 2; }
            long (*volatile fp)(long) = compute;
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (int k = 0; k < 3; k++) {
                    if (fork() == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        for (long i = 0; ; i++) {
                            long a = compute(i), b = fp(i);
                            printf("%d %ld %ld\\n", k, i, a == b ? a : -1);
                            usleep(20000);
                        }
                    }
                }
                while (wait(NULL) > 0) { }
                return 0;
            }
            """, "-O2");
        Path times3 = Gcc.object(dir, "times3g", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            w.awaitLines(0, 9, Duration.ofSeconds(20));
            System.setProperty("hpvm.session.root", sessions().toString());
            List<Integer> processes = SessionDir.find(w.pid()).processes();
            assertEquals(4, processes.size(), "the worker and its 3 children: " + processes);

            SwapTest.ok(Hpvm.cmd(sessions(), "compact", "compute"));
            for (int pid : processes) {
                CompactionTest.Text t = CompactionTest.text(sessions(), w, "compute", pid);
                assertTrue(t.siteTargets().stream().allMatch(a -> a == t.fn().address()), "process " + pid
                    + ": compacted v0, sites -> the original entry " + t);
                assertTrue(java.util.Arrays.equals(t.sites().original(), t.entry()), "process " + pid
                    + ": the original entry is back");
            }
            assertEveryChild(w, 2, "compacted at v0");

            Hpvm.Result s = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "compute", times3.toString()));
            assertTrue(s.out().contains("first routed 1 function (compute)"), s.out());
            assertEveryChild(w, 3, "swapped from compacted");
            SwapTest.ok(Hpvm.cmd(sessions(), "compact", "compute"));
            for (int pid : processes) {
                CompactionTest.Text t = CompactionTest.text(sessions(), w, "compute", pid);
                assertTrue(t.siteTargets().stream().allMatch(a -> a == t.slot()), "process " + pid
                    + ": compacted v1, sites -> v1 " + t);
                assertEquals(t.slot(), CompactionTest.jumpTarget(t), "process " + pid + ": the entry jumps to v1");
            }
            assertEveryChild(w, 3, "compacted at v1");
            SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            for (int pid : processes) {
                CompactionTest.Text t = CompactionTest.text(sessions(), w, "compute", pid);
                assertTrue(t.siteTargets().stream().allMatch(a -> a == t.fn().stub()), "process " + pid
                    + ": routed again, sites -> the stub " + t);
            }
            assertEveryChild(w, 2, "rolled back");
        }
    }

    /**
     * From where each of the 3 children has printed {@code k * i} once (lines printed before a change may still be
     * on their way through the pipes), 24 more lines all say {@code k * i}.
     */
    static void assertEveryChild(TestWorker w, long k, String what) {
        Set<String> switched = new TreeSet<>();
        int start = w.awaitLineIndex(Math.max(0, w.mark() - 1), l -> {
            String[] f = l.split(" ");
            if (Long.parseLong(f[1]) * k == Long.parseLong(f[2])) {
                switched.add(f[0]);
            }
            return switched.size() == 3;
        }, Duration.ofSeconds(20));
        Set<String> children = new TreeSet<>();
        for (String line : w.awaitLines(start + 1, 24, Duration.ofSeconds(20))) {
            String[] f = line.split(" ");
            assertEquals(Long.parseLong(f[1]) * k, Long.parseLong(f[2]), what + ": child " + f[0] + ": " + line);
            children.add(f[0]);
        }
        assertEquals(Set.of("0", "1", "2"), children, what);
    }
}
