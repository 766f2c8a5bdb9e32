package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * C++ inline functions and template instances live in COMDAT groups that every object defines again; a real linker
 * keeps one copy. A patch does the same with the worker: its copies of the group's code and data bind to the
 * worker's (a function-local static of an inline function keeps counting), unless they are swapped themselves. An
 * edited inline function the swap does not include is reported, and --all-changed finds it.
 */
class CxxComdatTest {

    static final String SOURCE = """
        #include <cstdio>
        #include <unistd.h>
        inline long next_id() { static long id = 0; return ++id; }
        template <class T> __attribute__((noinline)) T scale(T v) { return v * 3; }
        __attribute__((noinline)) long order(long x) { return scale(x) + next_id() * 1000; }
        inline const int *table() { static const int t[4] = {1, 2, 3, 4}; return t; }
        __attribute__((noipa)) const int *get() { return table(); }   // noipa: called every time
        int main() {
            std::setvbuf(stdout, nullptr, _IOLBF, 0);
            for (long i = 1; ; i++) { std::printf("%ld %ld %d\\n", i, order(i), get() == table()); usleep(20000); }
        }
        """;

    @TempDir
    Path dir;

    Path compile(String name, String source, String flags, boolean link) {
        Gcc.write(dir, name + ".cc", source);
        Path out = dir.resolve(link ? name : name + ".o");
        if (link) {
            CxxExceptionsTest.gxx(flags, "-o", out.toString(), dir.resolve(name + ".cc").toString());
        } else {
            CxxExceptionsTest.gxx(flags, "-c", "-o", out.toString(), dir.resolve(name + ".cc").toString());
        }
        return out;
    }

    /**
     * True when the line "i value" is scale(i) + next_id() * k with scale multiplying by {@code factor} and next_id()
     * returning i: the function-local static of next_id() has counted once per order, whatever version ran.
     */
    static boolean is(String line, int factor, int k) {
        String[] f = line.split(" ");
        long i = Long.parseLong(f[0]);
        return Long.parseLong(f[1]) == factor * i + k * i;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"-O2", "-O0", "-O2 -fPIC"})
    void inlineFunctionsAndTemplatesBindToTheWorkersCopies(String flags) {
        Path exe = compile("shop", SOURCE, flags.replace(" -fPIC", ""), true);
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            for (String line : w.awaitLines(w.mark(), 3, SwapTest.WAIT)) {
                assertTrue(is(line, 3, 1000), line);
            }
            // order() edited: its inlined next_id() must use the worker's function-local static.
            Path order = compile("order_fix", SOURCE.replace("next_id() * 1000", "next_id() * 2000"), flags, false);
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "order", order.toString());
            assertEquals(0, r.code(), r.toString());
            assertFalse(r.err().contains("differs"), "the patch's scale<long> is the worker's:\n" + r);
            for (String line : PatchSetTest.from(w, l -> is(l, 3, 2000), 4)) {
                assertTrue(is(line, 3, 2000), "the new order() with next_id()'s static counting on: " + line);
            }
            // get() from the same object: its table() constant is the worker's, at the same address.
            r = Hpvm.cmd(sessions, "swap", "get", order.toString());
            assertEquals(0, r.code(), r.toString());
            int mark = w.mark();
            for (String line : w.awaitLines(mark, 4, SwapTest.WAIT)) {
                assertTrue(line.endsWith(" 1"), "the new get() returns the worker's table(): " + line);
            }
            // The template edited too, but only order() swapped: the worker's scale<long> runs, and hpvm says so.
            Path both = compile("both_fix", SOURCE.replace("next_id() * 1000", "next_id() * 2000")
                .replace("return v * 3;", "return v * 5;"), flags, false);
            r = Hpvm.cmd(sessions, "swap", "order", both.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.err().contains("calls _Z5scaleIlET_S0_ in the worker, whose definition in the object "
                + "differs"), r.toString());
            // --all-changed finds the template instance and swaps it (order() is the same as its current version's
            // source, but not the worker's original: it is swapped again, harmlessly).
            r = Hpvm.cmd(sessions, "swap", "--all-changed", both.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().contains("_Z5scaleIlET_S0_"), r.toString());
            for (String line : PatchSetTest.from(w, l -> is(l, 5, 2000), 4)) {
                assertTrue(is(line, 5, 2000), "scale<long> now multiplies by 5: " + line);
            }
        }
    }
}
