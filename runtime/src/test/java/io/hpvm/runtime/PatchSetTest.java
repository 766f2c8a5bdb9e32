package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Several functions swapped together, and 'hpvm patch OLD.c NEW.c' finding them by itself. */
class PatchSetTest {

    static final String LIB = """
        static long hits;                                   /* state that must carry on */
        __attribute__((noinline)) long base(long x) { return x + 1; }
        __attribute__((noinline)) long price(long x) { hits++; return base(x) * 10; }
        __attribute__((noinline)) long untouched(long x) { return x - 1; }
        __attribute__((noinline)) long count(void) { return hits; }
        """;

    static final String MAIN = """
        #include <stdio.h>
        #include <unistd.h>
        long price(long); long untouched(long); long count(void);
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (long i = 0; ; i++) {
                long p = price(i);
                printf("%ld %ld %ld %ld\\n", i, p, untouched(i), count());
                usleep(20000);
            }
        }
        """;

    @TempDir
    Path dir;

    /** The first line matching {@code p} (the line reader may lag behind the worker) and the ones after it. */
    static List<String> from(TestWorker w, java.util.function.Predicate<String> p, int count) {
        int first = w.awaitLineIndex(Math.max(0, w.mark() - 1), p, SwapTest.WAIT);
        return w.awaitLines(first, count, SwapTest.WAIT);
    }

    static long first(String line) {
        return Long.parseLong(line.split(" ")[0]);
    }

    static long price(String line) {
        return Long.parseLong(line.split(" ")[1]);
    }

    Path worker() {
        Gcc.write(dir, "lib.c", LIB);
        return Gcc.executable(dir, "shop", MAIN, "-O2", dir.resolve("lib.c").toString());
    }

    /** One line edited in two functions of lib.c: exactly those two are swapped, as a set; hits carries on. */
    @Test
    void patchSwapsExactlyTheChangedFunctions() {
        Path exe = worker();
        Path edited = Gcc.write(dir, "lib_new.c", LIB.replace("return x + 1;", "return x + 2;")
            .replace("* 10;", "* 100;"));
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of("--cflags", "-O2"), exe)) {
            List<String> before = w.awaitLines(w.mark(), 3, SwapTest.WAIT);
            long hitsBefore = Long.parseLong(before.get(2).split(" ")[3]);
            Hpvm.Result r = Hpvm.cmd(sessions, "patch", dir.resolve("lib.c").toString(), edited.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().startsWith("changed functions: base, price\n"), r.out());
            assertTrue(r.out().contains("swapped base: v0 -> v1") && r.out().contains("swapped price: v0 -> v1"),
                r.out());
            List<String> after = from(w, l -> price(l) == (first(l) + 2) * 100, 4);
            for (String line : after) {
                long[] f = java.util.Arrays.stream(line.split(" ")).mapToLong(Long::parseLong).toArray();
                assertEquals((f[0] + 2) * 100, f[1], "both new versions run together: " + line);
                assertEquals(f[0] - 1, f[2], "untouched() was not swapped: " + line);
                assertTrue(f[3] > hitsBefore, "the file-static counter carried on: " + line);
            }
            Hpvm.Result ls = Hpvm.cmd(sessions, "ls", "--patched");
            assertTrue(ls.out().contains("base") && ls.out().contains("price") && !ls.out().contains("untouched"),
                ls.out());
            // Rolling back one member of the set rolls back the set.
            Hpvm.Result rb = Hpvm.cmd(sessions, "rollback", "price");
            assertEquals(0, rb.code(), rb.toString());
            assertTrue(rb.out().contains("rolled back price: v1 -> v0") && rb.out().contains("rolled back base: v1 "
                + "-> v0"), rb.out());
            for (String line : from(w, l -> price(l) == (first(l) + 1) * 10, 3)) {
                assertEquals((first(line) + 1) * 10, price(line), "the whole set rolled back: " + line);
            }
        }
    }

    /**
     * The README's way: keep a backup copy, edit the file in place, patch from the two. The backup's name
     * (lib.c.orig) is not a C file name to the compiler, and the file includes a header from its own directory.
     */
    @Test
    void patchFromABackupCopyAndTheEditedFile() throws java.io.IOException {
        Path src = dir.resolve("src");
        Gcc.write(src, "lib.h", "#define FACTOR 10\n");
        Gcc.write(src, "lib.c", "#include \"lib.h\"\n" + LIB.replace("* 10;", "* FACTOR;"));
        Path exe = Gcc.executable(dir, "shop_backup", MAIN, "-O2", src.resolve("lib.c").toString());
        java.nio.file.Files.copy(src.resolve("lib.c"), src.resolve("lib.c.orig"));
        Gcc.write(src, "lib.c", "#include \"lib.h\"\n" + LIB.replace("* 10;", "* FACTOR * 3;"));
        Path sessions = dir.resolve("sessions_backup");
        try (TestWorker w = TestWorker.start(sessions, List.of("--cflags", "-O2"), exe)) {
            w.awaitLines(w.mark(), 2, SwapTest.WAIT);
            Hpvm.Result r = Hpvm.cmd(sessions, "patch", src.resolve("lib.c.orig").toString(),
                src.resolve("lib.c").toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().startsWith("changed functions: price\n"), r.out());
            for (String line : from(w, l -> price(l) == (first(l) + 1) * 30, 3)) {
                assertEquals((first(line) + 1) * 30, price(line), line);
            }
        }
    }

    @Test
    void unchangedSourceSwapsNothing() {
        Path exe = worker();
        Path same = Gcc.write(dir, "lib_same.c", "/* only a comment changed */\n" + LIB);
        Path sessions = dir.resolve("sessions_same");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            Hpvm.Result r = Hpvm.cmd(sessions, "patch", dir.resolve("lib.c").toString(), same.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().contains("nothing swapped"), r.out());
        }
    }

    /** hpvm swap with several names: one set, linked together. */
    @Test
    void swapOfSeveralFunctionsIsOneSet() {
        Path exe = worker();
        Path obj = Gcc.object(dir, "lib_set", LIB.replace("return x + 1;", "return x + 3;").replace("* 10;", "* 7;"),
            "-O2");
        Path sessions = dir.resolve("sessions_set");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "price", "base", obj.toString());
            assertEquals(0, r.code(), r.toString());
            for (String line : from(w, l -> price(l) == (first(l) + 3) * 7, 3)) {
                assertEquals((first(line) + 3) * 7, price(line), line);
            }
        }
    }

    /** Functions that report their file and line when a check fails, as assert() and redis's serverAssert do. */
    static final String CHECKED = """
        #include <assert.h>
        #include <stdio.h>
        #define CHECK(c) do { if (!(c)) fprintf(stderr, "%s:%d: %s\\n", __FILE__, __LINE__, #c); } while (0)
        __attribute__((noinline)) long first(long x) {
            assert(x >= 0);
            return x + 1;
        }
        __attribute__((noinline)) long second(long x) {
            assert(x < 1000000000);
            CHECK(x != -7);
            return x * 2;
        }
        __attribute__((noinline)) long third(long x) {
            CHECK(x != -8);
            assert(x != -1);
            return x * 3;
        }
        """;

    /**
     * A line inserted in the first of three functions that use {@code __LINE__} (through assert() and a macro of
     * their own) moves the line numbers of the two below it: they still compile to the same code against the
     * original's numbering, so exactly one function is found changed and swapped, from a file compiled with -g
     * too; and the objects are kept in the session's directory, not in /tmp.
     */
    @Test
    void aOneLineEditAboveAssertsChangesOneFunction() throws java.io.IOException {
        Path src = dir.resolve("calc_src");
        Gcc.write(src, "calc.c", CHECKED);
        Path exe = Gcc.executable(dir, "checked", """
            #include <stdio.h>
            #include <unistd.h>
            long first(long); long second(long); long third(long);
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) {
                    printf("%ld %ld %ld %ld\\n", i, first(i), second(i), third(i));
                    usleep(20000);
                }
            }
            """, "-O2", "-g", src.resolve("calc.c").toString());
        java.nio.file.Files.copy(src.resolve("calc.c"), src.resolve("calc.c.orig"));
        Gcc.write(src, "calc.c", CHECKED.replace("    assert(x >= 0);\n", "    assert(x >= 0);\n    x += 10;\n"));
        Path sessions = dir.resolve("sessions_checked");
        Path compiled;
        try (TestWorker w = TestWorker.start(sessions, List.of("--cflags", "-O2 -g"), exe)) {
            w.awaitLines(w.mark(), 2, SwapTest.WAIT);
            Hpvm.Result r = Hpvm.cmd(sessions, "patch", src.resolve("calc.c.orig").toString(),
                src.resolve("calc.c").toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().startsWith("changed functions: first\n"), r.out());
            from(w, l -> l.split(" ")[1].equals(Long.toString(first(l) + 11)), 3).forEach(l ->
                assertEquals(first(l) + 11, Long.parseLong(l.split(" ")[1]), l));
            compiled = sessions.resolve(Long.toString(w.pid())).resolve("cc");
            try (var objects = java.nio.file.Files.walk(compiled)) {
                assertEquals(List.of("calc-2.o", "calc-3.o", "calc.o"), objects
                    .filter(java.nio.file.Files::isRegularFile).map(f -> f.getFileName().toString()).sorted().toList(),
                    "the old, the new and the renumbered");
            }
        }
        for (int i = 0; i < 100 && java.nio.file.Files.exists(compiled); i++) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        assertTrue(!java.nio.file.Files.exists(compiled.getParent()), "removed with the session: " + compiled);
    }
}
