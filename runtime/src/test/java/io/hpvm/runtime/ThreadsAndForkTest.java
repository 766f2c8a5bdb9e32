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
            // Lines printed before the swap may still be on their way through the pipes: start where every child
            // has printed the new behaviour once; from there on, every line must be new.
            Set<String> switched = new TreeSet<>();
            int start = w.awaitLineIndex(Math.max(0, w.mark() - 1), l -> {
                String[] f = l.split(" ");
                if (Long.parseLong(f[1]) * 3 == Long.parseLong(f[2])) {
                    switched.add(f[0]);
                }
                return switched.size() == 3;
            }, Duration.ofSeconds(20));
            List<String> after = w.awaitLines(start + 1, 24, Duration.ofSeconds(20));
            Set<String> children = new TreeSet<>();
            for (String line : after) {
                String[] f = line.split(" ");
                assertEquals(Long.parseLong(f[1]) * 3, Long.parseLong(f[2]), "child " + f[0] + " runs the new "
                    + "version: " + line);
                children.add(f[0]);
            }
            assertEquals(Set.of("0", "1", "2"), children);
        }
    }
}
