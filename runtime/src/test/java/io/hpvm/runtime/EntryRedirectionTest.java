package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Calls that no call site rewriting can see: through a function-pointer table, as a qsort comparator, as a
 * pthread_create start routine, and through a short (rel8) tail jump. With the entry redirected to the stub, one
 * swap changes what all four run.
 */
class EntryRedirectionTest {

    static final String WORKER = """
        #include <pthread.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        long hits[2];                       /* hits[1] counts calls of the new version */
        static long thread_arg;
        __attribute__((noinline)) static long f(const void *a, const void *b) {
            hits[0]++;
            if (a == &thread_arg) return 0;
            long x = *(const long *) a, y = *(const long *) b;
            return (x > y) - (x < y);
        }
        __attribute__((noinline)) long tail(const void *a, const void *b) { return f(a, b); }
        long (*table[1])(const void *, const void *) = { f };
        static const char *which(long before) { return hits[1] != before ? "v1" : "v0"; }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            long x = 1, y = 2, arr[8];
            for (long i = 0; ; i++) {
                long before = hits[1];
                table[0](&x, &y);
                printf("%ld table %s", i, which(before));
                before = hits[1];
                for (int k = 0; k < 8; k++) arr[k] = (k * 5) % 8;
                qsort(arr, 8, sizeof arr[0], (int (*)(const void *, const void *)) f);
                printf(" qsort %s", which(before));
                before = hits[1];
                pthread_t t;
                pthread_create(&t, NULL, (void *(*)(void *)) f, &thread_arg);
                pthread_join(t, NULL);
                printf(" thread %s", which(before));
                before = hits[1];
                tail(&x, &y);
                printf(" tail %s\\n", which(before));
                usleep(20000);
            }
        }
        """;

    static final String PATCH = """
        long hits[2];
        static long thread_arg;
        long f(const void *a, const void *b) {
            hits[1]++;
            if (a == &thread_arg) return 0;
            long x = *(const long *) a, y = *(const long *) b;
            return (x > y) - (x < y);
        }
        """;

    @TempDir
    Path dir;

    /** Plain -O2, and CET-enabled code (every entry starts with endbr64: the jump goes after it). */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"-O2", "-O2 -fcf-protection=full"})
    void oneSwapReachesPointerCallsCallbacksThreadsAndShortTailJumps(String flags) {
        List<String> f = new java.util.ArrayList<>(List.of(flags.split(" ")));
        f.add("-pthread");
        Path exe = Gcc.executable(dir, "paths", WORKER, f.toArray(new String[0]));
        if (flags.contains("cf-protection")) {
            assertTrue(Gcc.tool("objdump", "-d", exe.toString()).matches("(?s).*<f>:\\n\\s+[0-9a-f]+:\\s+f3 0f 1e "
                + "fa\\s+endbr64.*"), "precondition: f starts with endbr64");
        }
        String dis = Gcc.tool("objdump", "-d", "-w", exe.toString());
        assertTrue(dis.matches("(?s).*<tail>:\\n[^<]*\\beb [0-9a-f]{2}\\s+jmp\\s+[0-9a-f]+ <f>.*"),
            "precondition: tail() reaches f with a 2-byte jmp rel8:\n" + dis.replaceAll("(?s).*(<tail>:.{0,300}).*",
                "$1"));
        Path patch = Gcc.object(dir, "paths_fix", PATCH, flags.split(" "));
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            assertEquals(List.of("table v0 qsort v0 thread v0 tail v0"), tails(w.awaitLines(w.mark(), 1,
                Duration.ofSeconds(20))));
            Hpvm.Result ls = Hpvm.cmd(sessions, "ls");
            assertTrue(ls.out().matches("(?s).*\\nf\\s+v0\\s+0x[0-9a-f]+\\s+\\d+\\s+entry \\+ call sites.*"),
                ls.toString());
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "f", patch.toString());
            assertEquals(0, r.code(), r.toString());
            for (String line : tails(linesFrom(w, "table v1 qsort v1 thread v1 tail v1"))) {
                assertEquals("table v1 qsort v1 thread v1 tail v1", line, "every path runs the new version\n" + w);
            }
            assertEquals(0, Hpvm.cmd(sessions, "rollback", "f").code());
            for (String line : tails(linesFrom(w, "table v0 qsort v0 thread v0 tail v0"))) {
                assertEquals("table v0 qsort v0 thread v0 tail v0", line, "version 0 runs through the trampoline");
            }
        }
    }

    /** A stripped executable: only what it exports (.dynsym) is patchable; calls through pointers are routed. */
    @Test
    void strippedExecutableExportsArePatchable() {
        Path exe = Gcc.executable(dir, "stripped", """
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((noinline)) long compute(long x) { return x * 2; }
            long (*volatile fp)(long) = compute;
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { printf("%ld %ld\\n", i, fp(i)); usleep(20000); }
            }
            """, "-O2", "-rdynamic");
        Gcc.tool("strip", "--strip-all", exe.toString());
        assertTrue(!Gcc.tool("readelf", "-S", exe.toString()).contains(".symtab"), "precondition: no .symtab");
        Path patch = Gcc.object(dir, "stripped_fix", "long compute(long x) { return x * 3; }\n", "-O2");
        Path sessions = dir.resolve("sessions_stripped");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "before");
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "compute", patch.toString());
            assertEquals(0, r.code(), r.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "after, through the function pointer");
        }
    }

    /** A 3-byte function (xor eax, eax; ret) moves whole into its trampoline; the jump reaches into its padding. */
    @Test
    void functionShorterThanTheJumpUsesItsPadding() {
        Path exe = Gcc.executable(dir, "tiny", """
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((noinline)) long zero(void) { return 0; }
            __attribute__((noinline)) long next(long x) { return x + fprintf(stderr, "%s", ""); }
            long (*volatile fp)(void) = zero;
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { printf("%ld %ld\\n", i, fp() + next(2 * i)); usleep(20000); }
            }
            """, "-O2");
        String dis = Gcc.tool("objdump", "-d", "-w", exe.toString());
        assertTrue(dis.matches("(?s).*<zero>:\\n\\s+[0-9a-f]+:\\s+31 c0\\s+xor.*\\n\\s+[0-9a-f]+:\\s+c3\\s+ret.*"),
            "precondition: zero() is xor eax, eax; ret");
        Path patch = Gcc.object(dir, "tiny_fix", "long zero(void) { return 1000; }\n", "-O2");
        Path sessions = dir.resolve("sessions_tiny");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            Hpvm.Result ls = Hpvm.cmd(sessions, "ls");
            assertTrue(ls.out().matches("(?s).*\\nzero\\s+v0\\s+0x[0-9a-f]+\\s+0\\s+entry \\+ call sites.*"), ls.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> 2 * i, "before");
            assertEquals(0, Hpvm.cmd(sessions, "swap", "zero", patch.toString()).code());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> 2 * i + 1000, "after");
        }
    }

    @Test
    void entryRedirectionCanBeTurnedOff() {
        Path exe = Gcc.executable(dir, "paths_off", WORKER, "-O2", "-pthread");
        Path sessions = dir.resolve("sessions_off");
        try (TestWorker w = TestWorker.start(sessions, List.of("--no-entry-redirect"), exe)) {
            assertTrue(w.stderr().contains(", 0 entries redirected"), w.stderr());
            Hpvm.Result ls = Hpvm.cmd(sessions, "ls");
            assertTrue(ls.out().contains("entry redirection off"), ls.toString());
        }
    }

    /** The first line (after now) that ends with {@code text} and the two after it (the reader may lag). */
    private static List<String> linesFrom(TestWorker w, String text) {
        int first = w.awaitLineIndex(w.mark() == 0 ? 0 : w.mark() - 1, l -> l.endsWith(text), Duration.ofSeconds(20));
        return w.awaitLines(first, 3, Duration.ofSeconds(20));
    }

    private static List<String> tails(List<String> lines) {
        return lines.stream().map(l -> l.substring(l.indexOf(' ') + 1)).toList();
    }
}
