package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A stripped program, as distributions ship them, with its symbols in a separate debug file: its static functions
 * are patchable and a patch's file statics bind to the live ones, as in the unstripped program.
 */
class DebugFileTest {

    static final String PROGRAM = """
        #include <stdio.h>
        #include <unistd.h>
        static long served;
        static __attribute__((noinline)) long fee(long x) { served++; return x * 2; }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (long i = 0; ; i++) { long f = fee(i); printf("%ld %ld %ld\\n", i, f, served); usleep(20000); }
        }
        """;

    /** fee() as the fix: 3 per unit, and the same served counter (a file static of prog.c). */
    static final String FIX = "static long served;\nlong fee(long x) { served++; return x * 3; }\n";

    @TempDir
    Path dir;

    /** prog (stripped, with a .gnu_debuglink to prog.debug beside it) built from prog.c. */
    Path stripped(String debugDir) throws Exception {
        Path exe = Gcc.executable(dir, "prog", PROGRAM, "-O2", "-g");
        Path debug = Files.createDirectories(dir.resolve(debugDir)).resolve("prog.debug");
        Gcc.tool("objcopy", "--only-keep-debug", exe.toString(), debug.toString());
        Gcc.tool("strip", "--strip-all", exe.toString());
        Gcc.tool("objcopy", "--add-gnu-debuglink=" + debug, exe.toString());
        assertTrue(Gcc.tool("nm", exe.toString()).isEmpty() || !Gcc.tool("nm", exe.toString()).contains("fee"));
        return exe;
    }

    /** Waits for a line "i fee(i) served" with fee(i) = factor * i. */
    static void awaitFactor(TestWorker w, long factor) {
        SwapTest.awaitFactor(w, 3, factor);
    }

    @Test
    void aStaticFunctionOfAStrippedProgramIsPatchableThroughItsDebugLink() throws Exception {
        Path exe = stripped(".debug");
        Path fix = Gcc.write(dir.resolve("src"), "prog.c", FIX);
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            assertTrue(w.stderr().contains("; symbols from " + dir.resolve(".debug/prog.debug") + " (.gnu_debuglink)"),
                w.stderr());
            awaitFactor(w, 2);
            Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions, "swap", "fee", fix.toString()));
            assertTrue(r.out().startsWith("swapped fee: v0 -> v1"), r.out());
            awaitFactor(w, 3);
            // served carries on: the patch's static bound to the program's (from prog.c, as the debug file says)
            String line = w.awaitLine(w.mark(), l -> l.split(" ").length == 3, SwapTest.WAIT);
            String[] f = line.split(" ");
            assertEquals(Long.parseLong(f[0]) + 1, Long.parseLong(f[2]), line);
        }
    }

    @Test
    void aDebugFileElsewhereIsGivenWithDebugFile() throws Exception {
        Path exe = stripped("elsewhere");
        Path moved = dir.resolve("kept/prog.debug");
        Files.createDirectories(moved.getParent());
        Files.move(dir.resolve("elsewhere/prog.debug"), moved);
        Path sessions = dir.resolve("sessions2");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            assertTrue(w.stderr().contains("; no .symtab and no debug file found: only exported functions are "
                + "patchable (install its -dbgsym package, or give --debug-file)"), w.stderr());
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "fee", Gcc.object(dir, "fix", FIX, "-O2").toString());
            assertEquals(5, r.code(), r.toString());
            assertTrue(r.err().contains("has no patchable function 'fee'") && r.err().contains("The program is "
                + "stripped and was started without its debug file"), r.err());
        }
        Path sessions3 = dir.resolve("sessions3");
        try (TestWorker w = TestWorker.start(sessions3, List.of("--debug-file", moved.toString()), exe)) {
            assertTrue(w.stderr().contains("; symbols from " + moved + " (given)"), w.stderr());
            awaitFactor(w, 2);
            SwapTest.ok(Hpvm.cmd(sessions3, "swap", "fee", Gcc.object(dir, "fix", FIX, "-O2").toString()));
            awaitFactor(w, 3);
        }
        Path wrong = Gcc.executable(dir, "other", PROGRAM.replace("x * 2", "x * 5"), "-O2");
        Hpvm.Result refused = Hpvm.cmd(dir.resolve("sessions4"), "run", "--debug-file", wrong.toString(),
            exe.toString());
        assertEquals(6, refused.code(), refused.toString());
        assertTrue(refused.err().contains("--debug-file " + wrong + " is not " + exe + "'s debug file: build-id "),
            refused.err());
    }
}
