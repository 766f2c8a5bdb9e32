package io.hpvm.runtime;

import io.hpvm.testing.Gcc;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.LongBinaryOperator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * End-to-end: real C workers compiled with gcc, run under a real {@code hpvm run}, patched with objects compiled
 * with gcc, asserting on what the worker prints before and after each swap and rollback.
 */
class SwapTest {

    static final Duration WAIT = Duration.ofSeconds(20);

    /** A loop printing "i compute(i)" about 50 times a second. */
    static final String LOOP_WORKER = """
        #include <stdio.h>
        #include <unistd.h>
        __attribute__((noinline)) long compute(long x) { return x * 2; }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (long i = 0; ; i++) { printf("%ld %ld\\n", i, compute(i)); usleep(20000); }
        }
        """;

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    /**
     * Waits until, after {@code mark}, the worker prints a line of the expected behaviour, and checks that the next
     * lines keep it (a line of the other behaviour after that would be a torn swap). The line reader may lag behind
     * the worker on a loaded machine, so lines printed before the command returned can still arrive after
     * {@code mark}: the first expected line, not a fixed position, is where checking starts.
     */
    /**
     * Waits for a line of {@code fields} numbers, "i o ...", with o = factor * i. (Not {@link #assertBehaviour}, which
     * checks the lines after it too: a worker may print a counter another thread advanced before o was computed.)
     */
    static void awaitFactor(TestWorker w, int fields, long factor) {
        w.awaitLine(w.mark(), l -> {
            String[] f = l.split(" ");
            return f.length == fields && Long.parseLong(f[1]) == factor * Long.parseLong(f[0]);
        }, WAIT);
    }

    static void assertBehaviour(TestWorker w, int mark, LongBinaryOperator expected, String what) {
        int first = w.awaitLineIndex(mark, line -> behaves(line, expected), WAIT);
        List<String> lines = w.awaitLines(first, 6, WAIT);
        for (String line : lines) {
            if (line.startsWith("[")) {
                continue; // a patch's own message
            }
            assertTrue(behaves(line, expected), what + ": line '" + line + "'\n" + w);
        }
    }

    private static boolean behaves(String line, LongBinaryOperator expected) {
        if (line.startsWith("[")) {
            return false;
        }
        String[] f = line.trim().split("\\s+");
        try {
            return Long.parseLong(f[f.length - 1]) == expected.applyAsLong(Long.parseLong(f[0]), 0);
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /**
     * Lines "i value": from the first value past {@code last + 100}, the next lines go on by 100 each (a counter the
     * new version adds 100 to, which went on from the worker's live value).
     */
    static void assertCountsOnBy100(TestWorker w, long last, String counter) {
        List<String> after = PatchSetTest.from(w, l -> Long.parseLong(l.split(" ")[1]) > last + 100, 3);
        long prev = -1;
        for (String line : after) {
            long v = Long.parseLong(line.split(" ")[1]);
            assertTrue(v > last + 100 && (prev < 0 || v == prev + 100), counter + " goes on by 100: " + after);
            prev = v;
        }
    }

    static Hpvm.Result ok(Hpvm.Result r) {
        assertEquals(0, r.code(), r.toString());
        return r;
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"pie,-O0", "pie,-O2", "no-pie,-O0", "no-pie,-O2"})
    void swapAndRollBackOnPieAndNonPie(String kind, String opt) {
        String[] flags = kind.equals("pie") ? new String[] {opt, "-fPIE", "-pie"}
            : new String[] {opt, "-fno-pie", "-no-pie"};
        Path exe = Gcc.executable(dir, "loop", LOOP_WORKER, flags);
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", flags);
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            assertBehaviour(w, w.mark(), (i, z) -> i * 2, "before the swap");
            Hpvm.Result r = ok(Hpvm.cmd(sessions(), "swap", "compute", patch.toString()));
            assertTrue(r.out().startsWith("swapped compute: v0 -> v1 at 0x"), r.out());
            assertBehaviour(w, w.mark(), (i, z) -> i * 3, "after the swap");
            Hpvm.Result ls = ok(Hpvm.cmd(sessions(), "ls"));
            assertTrue(ls.out().matches("(?s).*\\ncompute\\s+v1/1\\s+0x[0-9a-f]+\\s+1\\s+entry \\+ call sites.*"),
                ls.out());
            ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            assertBehaviour(w, w.mark(), (i, z) -> i * 2, "after the rollback");
            ok(Hpvm.cmd(sessions(), "rollback", "compute", "--to", "1"));
            assertBehaviour(w, w.mark(), (i, z) -> i * 3, "after rolling forward to v1");
        }
    }

    /** Patches as users compile them: the program's flags, PIC or not, with debug info, per-function sections. */
    @ParameterizedTest(name = "patch flags: {0}")
    @CsvSource({"-O2", "-O2 -fPIC -g", "-O0 -g -ffunction-sections -fdata-sections", "-O3 -fno-pie"})
    void patchCallsLibcWithAStringLiteralAndKeepsGlobalState(String patchFlags) {
        Path exe = Gcc.executable(dir, "state", """
            #include <stdio.h>
            #include <unistd.h>
            long counter;
            __attribute__((noinline)) long step(void) { counter += 1; return counter; }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { long v = step(); printf("%ld %ld\\n", i, v); usleep(20000); }
            }
            """, "-O2", "-no-pie", "-fno-pie");
        // The patch is the whole file recompiled: it defines counter too, which must bind to the live one.
        Path patch = Gcc.object(dir, "state_fix", """
            #include <stdio.h>
            long counter;
            long step(void) { counter += 1000; printf("[patched] step adds %d\\n", 1000); return counter; }
            """, patchFlags.split(" "));
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            List<String> before = w.awaitLines(w.mark(), 5, WAIT);
            long last = Long.parseLong(before.get(4).split(" ")[1]);
            assertTrue(last >= 5, "counter counts: " + before);
            int mark = w.mark();
            ok(Hpvm.cmd(sessions(), "swap", "step", patch.toString()));
            int swapped = w.mark();
            String banner = w.awaitLine(mark, l -> l.startsWith("[patched] step adds 1000"), WAIT);
            assertEquals("[patched] step adds 1000", banner);
            List<String> after = w.awaitLines(swapped, 12, WAIT);
            long prev = -1;
            int jumps = 0;
            for (String line : after) {
                if (line.startsWith("[patched]")) {
                    continue;
                }
                long v = Long.parseLong(line.split(" ")[1]);
                if (prev >= 0) {
                    long d = v - prev;
                    assertTrue(d == 1 || d == 1000, "counter carried on across the swap: " + after);
                    jumps += d == 1000 ? 1 : 0;
                }
                prev = v;
            }
            assertTrue(jumps >= 3, "the new step() updates the live counter: " + after);
            assertTrue(prev > last + 1000, "state kept: before " + last + ", after " + prev);
        }
    }

    /**
     * gcc -O2 (-fipa-ra) lets main keep i in rsi across "call compute", because compute never writes rsi. A new
     * version that calls libc clobbers rsi: hpvm must enter it through a thunk that restores what callers rely on.
     */
    @Test
    void callersThatRelyOnRegistersTheOriginalLeftIntactKeepThem() {
        Path exe = Gcc.executable(dir, "ipara", LOOP_WORKER, "-O2");
        String main = Gcc.tool("objdump", "-d", "--no-show-raw-insn", exe.toString());
        assertTrue(main.matches("(?s).*mov\\s+%rbx,%rsi\\n[^\\n]*\\n[^\\n]*call\\s+[0-9a-f]+ <compute>.*"),
            "precondition: main keeps i in rsi across the call:\n" + main);
        Path clobbering = Gcc.object(dir, "clobbering", """
            #include <unistd.h>
            long compute(long x) { getpid(); return x * 3; }
            """, "-O2");
        Path plain = Gcc.object(dir, "plain", "long compute(long x) { return x * 4; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            Hpvm.Result r = ok(Hpvm.cmd(sessions(), "swap", "compute", clobbering.toString()));
            assertTrue(r.out().contains("register-preserving thunk"), r.out());
            assertBehaviour(w, w.mark(), (i, z) -> i * 3, "i (kept in rsi by main) survives the new version");
            Hpvm.Result ls = ok(Hpvm.cmd(sessions(), "ls"));
            assertTrue(ls.out().contains("via register-preserving thunk"), ls.out());
            Hpvm.Result direct = ok(Hpvm.cmd(sessions(), "swap", "compute", plain.toString()));
            assertTrue(!direct.out().contains("thunk"), "a version no wider than the original is entered directly: "
                + direct.out());
            assertBehaviour(w, w.mark(), (i, z) -> i * 4, "after the second swap");
        }
    }

    /**
     * A user's whole source file, edited and recompiled: a file-static counter that must stay the live one, a
     * static const table that is the patch's own, and calls to IFUNCs (strlen, memcpy) that hpvm resolves for
     * the worker's CPU.
     */
    @Test
    void wholeFileRecompileKeepsStaticsAndCallsIfuncs() {
        String v1 = """
            #include <stdio.h>
            #include <string.h>
            #include <unistd.h>
            struct request { int id; char path[32]; };
            static int served;
            static const char *greetings[] = { "hello", "bonjour", "hola" };
            int verbose = 1;
            static int score(const char *s) { int h = 0; while (*s) h = h * 31 + *s++; return h & 0xff; }
            int handle(struct request *r) {
                served++;
                int s = score(r->path);
                if (verbose) printf("%d %d %s score %d\\n", r->id, served, greetings[r->id % 3], s);
                return s;
            }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (int i = 0; ; i++) {
                    struct request r = { .id = i };
                    snprintf(r.path, sizeof r.path, "/item/%d", i % 7);
                    handle(&r);
                    usleep(20000);
                }
            }
            """;
        String v2 = v1.replace("\"hello\", \"bonjour\", \"hola\"", "\"HELLO\", \"BONJOUR\", \"HOLA\"")
            .replace("score %d\\n\", r->id, served, greetings[r->id % 3], s);",
                "score %d len %zu\\n\", r->id, served, greetings[r->id % 3], s, strlen(r->path));"
                    + " char copy[32]; memcpy(copy, r->path, sizeof copy);");
        assertTrue(v2.contains("strlen") && v2.contains("HOLA"), v2);
        Path exe = Gcc.executable(dir, "server", v1, "-O2");
        Path patch = Gcc.object(dir, "server_v2", v2, "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            w.awaitLines(w.mark(), 3, WAIT);
            Hpvm.Result r = ok(Hpvm.cmd(sessions(), "swap", "--verbose", "handle", patch.toString()));
            assertTrue(r.out().contains("strlen") && r.out().contains("IFUNC resolved"), r.out());
            List<String> after = PatchSetTest.from(w, l -> l.endsWith(" len 7"), 6);
            for (String line : after) {
                String[] f = line.split(" ");
                assertEquals(Integer.parseInt(f[0]) + 1, Integer.parseInt(f[1]), "served is the live counter: " + line);
                assertTrue(f[2].equals(f[2].toUpperCase()) && line.endsWith(" len 7"), "the new code runs: " + line
                    + "\n" + w);
            }
        }
    }

    /** `static long counter` in two source files: the patch of a.c binds to a.c's, by name and source file. */
    @Test
    void fileStaticsBindByNameAndSourceFile() throws Exception {
        String a = "static long counter; __attribute__((noinline)) long bump(void) { return ++counter; }\n";
        String b = "static long counter; __attribute__((noinline)) long other(void) { return counter += 10; }\n";
        Gcc.write(dir, "a.c", a);
        Gcc.write(dir, "b.c", b);
        Path exe = Gcc.executable(dir, "twofiles", """
            #include <stdio.h>
            #include <unistd.h>
            long bump(void); long other(void);
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (;;) { long x = bump(); printf("%ld %ld\\n", x, other()); usleep(20000); }
            }
            """, "-O2", dir.resolve("a.c").toString(), dir.resolve("b.c").toString());
        Path patch = Gcc.object(dir, "a", a.replace("++counter", "counter += 1000"), "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            List<String> before = w.awaitLines(w.mark(), 3, WAIT);
            long lastA = Long.parseLong(before.get(2).split(" ")[0]);
            Hpvm.Result r = ok(Hpvm.cmd(sessions(), "swap", "--verbose", "bump", patch.toString()));
            assertTrue(r.out().contains("counter") && r.out().contains("static in a.c"), r.out());
            List<String> after = PatchSetTest.from(w, l -> Long.parseLong(l.split(" ")[0]) > lastA + 1000, 4);
            long prevA = -1;
            for (String line : after) {
                long x = Long.parseLong(line.split(" ")[0]);
                long y = Long.parseLong(line.split(" ")[1]);
                assertTrue(x > lastA + 1000, "a.c's live counter carried on: " + after);
                assertTrue(prevA < 0 || x == prevA + 1000, "a.c's counter grows by 1000: " + after);
                assertTrue(y % 10 == 0 && y < 100_000, "b.c's counter untouched: " + after);
                prevA = x;
            }
        }
    }

    /** Source intake: hpvm swap FN file.c compiles with the flags given to hpvm run --cflags. */
    @Test
    void swapFromSourceUsesTheRunFlags() {
        Path exe = Gcc.executable(dir, "src_loop", LOOP_WORKER, "-O2", "-fno-pie", "-no-pie");
        Path good = Gcc.write(dir, "compute_fix.c", "long compute(long x) { return x * SCALE; }\n");
        Path bad = Gcc.write(dir, "compute_bad.c", "long compute(long x) { return x * ; }\n");
        try (TestWorker w = TestWorker.start(sessions(), List.of("--cflags", "-O2 -fno-pie -DSCALE=5"), exe)) {
            Hpvm.Result r = Hpvm.cmd(sessions(), "swap", "compute", bad.toString());
            assertEquals(4, r.code(), r.toString());
            assertTrue(r.err().contains("compiling " + bad + " failed (cc -c -O2 -fno-pie -DSCALE=5")
                && r.err().contains("error"), r.toString());
            assertTrue(r.err().lines().anyMatch(l -> l.startsWith(bad + ":1:") && l.contains("error")),
                "the compiler's diagnostics on their own lines, naming the user's file: " + r);
            assertBehaviour(w, w.mark(), (i, z) -> i * 2, "unchanged after a compile error");
            Hpvm.Result ok = ok(Hpvm.cmd(sessions(), "swap", "compute", good.toString()));
            assertTrue(ok.out().contains("from " + good), ok.out());
            assertBehaviour(w, w.mark(), (i, z) -> i * 5, "compiled with the run's -DSCALE=5");
            ok(Hpvm.cmd(sessions(), "swap", "--cflags", "-O1 -DSCALE=7", "compute", good.toString()));
            assertBehaviour(w, w.mark(), (i, z) -> i * 7, "--cflags on swap wins");
        }
    }

    /**
     * The same object into the same function again changes nothing and says so (exit 0), by the object's SHA-256,
     * also when it is compiled again from the same source; another object, or the same one once something else was
     * swapped in between, is a new version as usual.
     */
    @Test
    void theSameObjectSwappedAgainChangesNothing() {
        Path exe = Gcc.executable(dir, "idem", LOOP_WORKER, "-O2");
        Path three = Gcc.object(dir, "three", "long compute(long x) { return x * 3; }\n", "-O2");
        Path four = Gcc.object(dir, "four", "long compute(long x) { return x * 4; }\n", "-O2");
        Path source = Gcc.write(dir, "five.c", "long compute(long x) { return x * 5; }\n");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            ok(Hpvm.cmd(sessions(), "swap", "compute", three.toString()));
            Hpvm.Result again = ok(Hpvm.cmd(sessions(), "swap", "compute", three.toString()));
            assertTrue(again.out().matches("compute: v1 already runs " + java.util.regex.Pattern.quote(three.toString())
                + ", already applied \\(sha256 [0-9a-f]{12}, swapped in \\d{4}-\\d\\d-\\d\\dT[0-9:]+Z\\); nothing "
                + "changed\n"), again.out());
            Hpvm.Result json = ok(Hpvm.cmd(sessions(), "swap", "--json", "compute", three.toString()));
            assertTrue(json.out().contains("\"to_version\":1") && json.out().contains("\"already_applied\":true"),
                json.out());
            assertBehaviour(w, w.mark(), (i, z) -> i * 3, "still v1");
            ok(Hpvm.cmd(sessions(), "swap", "compute", four.toString()));
            Hpvm.Result back = ok(Hpvm.cmd(sessions(), "swap", "compute", three.toString()));
            assertTrue(back.out().startsWith("swapped compute: v2 -> v3 "), back.out());
            assertBehaviour(w, w.mark(), (i, z) -> i * 3, "v3");
            ok(Hpvm.cmd(sessions(), "swap", "compute", source.toString()));
            Hpvm.Result recompiled = ok(Hpvm.cmd(sessions(), "swap", "compute", source.toString()));
            assertTrue(recompiled.out().startsWith("compute: v4 already runs "), recompiled.out());
            Hpvm.Result ls = ok(Hpvm.cmd(sessions(), "ls"));
            assertTrue(ls.out().matches("(?s).*\\ncompute\\s+v4/4\\s.*"), "no version added by the repeats:\n"
                + ls.out());
        }
    }

    /** gcc -O3 made a constant-propagated clone of scale(); swapping scale warns that the clone does not change. */
    @Test
    void compilerClonesAreReported() {
        String source = """
            #include <stdio.h>
            #include <unistd.h>
            volatile long kk = 1;
            __attribute__((noinline)) static long scale(long x, long k) {
                long s = 0;
                for (int i = 0; i < 8; i++) s += (x * k + i) / (k + i + 1);
                return s;
            }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { printf("%ld %ld %ld\\n", i, scale(i, 3), scale(i, kk)); usleep(20000); }
            }
            """;
        Path exe = Gcc.executable(dir, "clones", source, "-O3");
        String syms = Gcc.tool("nm", exe.toString());
        assertTrue(syms.contains("scale.constprop.0"), "precondition: gcc cloned scale:\n" + syms);
        Path patch = Gcc.object(dir, "scale_fix", "long scale(long x, long k) { return x + k; }\n", "-O3");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            Hpvm.Result r = ok(Hpvm.cmd(sessions(), "swap", "scale", patch.toString()));
            assertTrue(r.err().contains("the compiler also made copies of scale in the worker (scale.constprop.0)"),
                r.toString());
            List<String> after = PatchSetTest.from(w, l -> {
                String[] f = l.split(" ");
                return Long.parseLong(f[0]) + 1 == Long.parseLong(f[2]);
            }, 3);
            for (String line : after) {
                String[] f = line.split(" ");
                assertEquals(Long.parseLong(f[0]) + 1, Long.parseLong(f[2]), "scale itself changed: " + line);
            }
        }
    }

    /** C++: swap by the demangled name (and by the name without its parameter list when it is not overloaded). */
    @Test
    void cxxMethodsAreNamedAsWritten() throws Exception {
        String shop = """
            #include <cstdio>
            #include <unistd.h>
            namespace shop {
            struct Cart {
                __attribute__((noinline)) static long total(long n);
                __attribute__((noinline)) static long total(long n, long k);
            };
            long Cart::total(long n) { return n * 2; }
            long Cart::total(long n, long k) { return n * k; }
            }
            int main() {
                setvbuf(stdout, nullptr, _IOLBF, 0);
                for (long i = 0; ; i++) { std::printf("%ld %ld\\n", i, shop::Cart::total(i) + shop::Cart::total(i, 0)); usleep(20000); }
            }
            """;
        Gcc.write(dir, "shop.cc", shop);
        Path exe = dir.resolve("shop");
        Gcc.tool("g++", "-O2", "-o", exe.toString(), dir.resolve("shop.cc").toString());
        Gcc.write(dir, "shop_fix.cc", shop.replace("return n * 2;", "return n * 3;"));
        Path patch = dir.resolve("shop_fix.o");
        Gcc.tool("g++", "-O2", "-c", "-o", patch.toString(), dir.resolve("shop_fix.cc").toString());
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            Hpvm.Result amb = Hpvm.cmd(sessions(), "swap", "shop::Cart::total", patch.toString());
            assertEquals(2, amb.code(), amb.toString());
            assertTrue(amb.err().contains("overloaded") && amb.err().contains("shop::Cart::total(long, long)"),
                amb.toString());
            ok(Hpvm.cmd(sessions(), "swap", "shop::Cart::total(long)", patch.toString()));
            assertBehaviour(w, w.mark(), (i, z) -> i * 3, "the demangled name found the method");
        }
    }

    /**
     * A patch reading and updating the worker's thread-local variable: initial-exec and local-exec access, and
     * general-dynamic (-fPIC) through __tls_get_addr with the executable's module id.
     */
    @ParameterizedTest(name = "patch flags: {0}")
    @CsvSource({"extern,-O2", "extern,-O2 -fno-pie", "extern,-O2 -fPIC -ftls-model=initial-exec",
        "defines,-O2 -fno-pie", "extern,-O2 -fPIC", "defines,-O2 -fPIC", "defines,-O0 -fPIC"})
    void patchUsesTheWorkersThreadLocalVariable(String declaration, String patchFlags) {
        Path exe = Gcc.executable(dir, "tls", """
            #include <stdio.h>
            #include <unistd.h>
            __thread long tls_counter = 5;
            __attribute__((noinline)) long tick(void) { return ++tls_counter; }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { long v = tick(); printf("%ld %ld\\n", i, v); usleep(20000); }
            }
            """, "-O2");
        // "defines": the whole file recompiled, so the patch defines tls_counter itself (local-exec access).
        String decl = declaration.equals("extern") ? "extern __thread long tls_counter;\n"
            : "__thread long tls_counter = 5;\n";
        Path patch = Gcc.object(dir, "tls_fix", decl + "long tick(void) { tls_counter += 100; return tls_counter; }\n",
            patchFlags.split(" "));
        String relocs = Gcc.tool("readelf", "-rW", patch.toString());
        assertTrue(relocs.contains("R_X86_64_GOTTPOFF") || relocs.contains("R_X86_64_TPOFF32")
            || relocs.contains("R_X86_64_TLSGD"), relocs);
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            List<String> before = w.awaitLines(w.mark(), 3, WAIT);
            long last = Long.parseLong(before.get(2).split(" ")[1]);
            ok(Hpvm.cmd(sessions(), "swap", "tick", patch.toString()));
            assertCountsOnBy100(w, last, "the live TLS counter");
        }
    }

    /**
     * A shared library's thread-local variable that the program uses: initial-exec access reads the executable's own
     * GOT slot for it; a -fPIC patch's general-dynamic access is relaxed to that. One the program never uses is
     * refused with the reason.
     */
    @ParameterizedTest(name = "patch flags: {0}")
    @CsvSource({"-O2", "-O2 -fPIC", "-O0 -fPIC"})
    void patchUsesASharedLibrarysThreadLocalTheProgramUses(String patchFlags) {
        Gcc.write(dir, "libt.c", "__thread long lib_counter = 5;\n__thread long lib_unused;\n");
        Path lib = dir.resolve("libt.so");
        Gcc.tool("gcc", "-O2", "-shared", "-fPIC", "-o", lib.toString(), dir.resolve("libt.c").toString());
        Path main = Gcc.write(dir, "libtls.c", """
            #include <stdio.h>
            #include <unistd.h>
            extern __thread long lib_counter;
            __attribute__((noinline)) long tick(void) { return ++lib_counter; }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { long v = tick(); printf("%ld %ld\\n", i, v); usleep(20000); }
            }
            """);
        Path exe = Gcc.link(dir, "libtls", "-O2", main.toString(), "-L" + dir, "-lt", "-Wl,-rpath," + dir);
        Path patch = Gcc.object(dir, "libtls_fix", "extern __thread long lib_counter;\n"
            + "long tick(void) { lib_counter += 100; return lib_counter; }\n", patchFlags.split(" "));
        Path unused = Gcc.object(dir, "libtls_unused", "extern __thread long lib_unused;\n"
            + "long tick(void) { return ++lib_unused; }\n", patchFlags.split(" "));
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            long last = Long.parseLong(w.awaitLines(w.mark(), 3, WAIT).get(2).split(" ")[1]);
            Hpvm.Result refused = Hpvm.cmd(sessions(), "swap", "tick", unused.toString());
            assertEquals(6, refused.code(), refused.toString());
            assertTrue(refused.err().contains("lib_unused") && refused.err().contains("never uses one of that name"),
                refused.toString());
            Hpvm.Result r = ok(Hpvm.cmd(sessions(), "swap", "-v", "tick", patch.toString()));
            assertTrue(r.out().contains("through the executable's GOT slot"), r.out());
            assertCountsOnBy100(w, last, "the library's TLS counter");
        }
    }

    /** A file-static thread-local variable, the file recompiled with -fPIC: local-dynamic access (TLSLD, DTPOFF32). */
    @Test
    void patchUsesAFileStaticThreadLocalThroughLocalDynamicAccess() {
        String source = """
            #include <stdio.h>
            #include <unistd.h>
            static __thread long seen = 7;
            __attribute__((noinline)) long tick(void) { return ++seen; }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { long v = tick(); printf("%ld %ld\\n", i, v); usleep(20000); }
            }
            """;
        Path exe = Gcc.executable(dir, "ticker", source, "-O2");
        Path patch = Gcc.object(dir.resolve("fix"), "ticker", source.replace("return ++seen;",
            "seen += 100; return seen;"), "-O2", "-fPIC");
        String relocs = Gcc.tool("readelf", "-rW", patch.toString());
        assertTrue(relocs.contains("R_X86_64_TLSLD") && relocs.contains("R_X86_64_DTPOFF32"), relocs);
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            long last = Long.parseLong(w.awaitLines(w.mark(), 3, WAIT).get(2).split(" ")[1]);
            ok(Hpvm.cmd(sessions(), "swap", "tick", patch.toString()));
            assertCountsOnBy100(w, last, "the worker's static TLS counter");
        }
    }

    /** A function the compiler also inlined: the swap goes through, and the warning names where (from DWARF). */
    @ParameterizedTest(name = "worker flags: {0}")
    @CsvSource({"-O2 -g,true", "-O2,false"})
    void inlinedCopiesAreReportedFromDebugInformation(String flags, boolean debugInfo) {
        Path exe = Gcc.executable(dir, "inlined", """
            #include <stdio.h>
            #include <unistd.h>
            long price(long x) { return x * 10 + 1; }
            static long twice(long x) { return price(x) + price(x + 1); }
            long api(long x) { return twice(x) - 1; }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { printf("%ld %ld\\n", i, api(i)); usleep(20000); }
            }
            """, flags.split(" "));
        Path patch = Gcc.object(dir, "inlined_fix", "long price(long x) { return x * 10 + 2; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            Hpvm.Result r = Hpvm.cmd(sessions(), "swap", "price", patch.toString());
            assertEquals(0, r.code(), r.toString());
            assertEquals(debugInfo, r.err().contains("the compiler inlined price into 1 other function(s) of the "
                + "worker (api, from its debug information)"), r.toString());
        }
    }

    /**
     * A session root so deep that its control socket's path would pass the kernel's 107-byte limit for Unix socket
     * names: hpvm binds it through the root's descriptor ({@code /proc/self/fd/N/PID/control}), so it still works
     * (supervisors killed outright, whose sockets are gone, are {@link SupervisorKilledTest}'s).
     */
    @Test
    void aDeepSessionRootStillGetsItsControlSocket() {
        Path exe = Gcc.executable(dir, "deep", LOOP_WORKER, "-O2");
        Path deep = dir.resolve("d".repeat(110));
        Path patch = Gcc.object(dir, "deep_fix", "long compute(long x) { return x * 5; }\n", "-O2");
        try (TestWorker w = TestWorker.start(deep, List.of(), exe)) {
            ok(Hpvm.cmd(deep, "swap", "compute", patch.toString()));
            assertBehaviour(w, w.mark(), (i, z) -> i * 5, "swapped in a deep session root");
            assertTrue(Files.exists(deep.resolve(w.pid() + "/control")), "the control socket is there");
            assertFalse(w.stderr().contains("no control socket"), w.stderr());
        }
    }

    @Test
    void staticExecutable() {
        Path exe = Gcc.executable(dir, "static", LOOP_WORKER, "-O2", "-static");
        Path patch = Gcc.object(dir, "static_fix", """
            #include <stdio.h>
            long compute(long x) { if (x % 25 == 0) printf("[patched] %s\\n", "static"); return x * 3; }
            """, "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            assertBehaviour(w, w.mark(), (i, z) -> i * 2, "before");
            ok(Hpvm.cmd(sessions(), "swap", "compute", patch.toString()));
            int mark = w.mark();
            assertBehaviour(w, mark, (i, z) -> i * 3, "after");
            w.awaitLine(mark, "[patched] static"::equals, WAIT);
        }
    }

    @Test
    void recursiveFunctionRecursesIntoTheNewVersion() {
        Path exe = Gcc.executable(dir, "fib", """
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((noinline)) long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { printf("%ld %ld\\n", i, fib(15)); usleep(20000); }
            }
            """, "-O2");
        // New base case: fib'(0) = 0, fib'(1) = 2, so fib'(15) = 2 * fib(15) = 1220 only if every recursive call
        // runs the new version.
        Path patch = Gcc.object(dir, "fib_fix", "long fib(long n) { return n < 2 ? 2 * n : fib(n - 1) + fib(n - 2); }\n",
            "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            assertBehaviour(w, w.mark(), (i, z) -> 610, "fib(15) before");
            ok(Hpvm.cmd(sessions(), "swap", "fib", patch.toString()));
            assertBehaviour(w, w.mark(), (i, z) -> 1220, "fib(15) after, recursing into the new version");
        }
    }

    @Test
    void functionCalledFromSeveralCallSites() {
        Path exe = Gcc.executable(dir, "sites", """
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((noinline)) long f(long x) { return x + 1; }
            __attribute__((noinline)) long a(long x) { return f(x) * 10; }
            __attribute__((noinline)) long b(long x) { return f(x) * 100; }
            int main(void) {
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (long i = 0; ; i++) { printf("%ld %ld\\n", i, f(i) + a(i) + b(i)); usleep(20000); }
            }
            """, "-O1");
        Path patch = Gcc.object(dir, "f_fix", "long f(long x) { return x + 2; }\n", "-O1");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            assertBehaviour(w, w.mark(), (i, z) -> (i + 1) * 111, "before");
            Hpvm.Result ls = ok(Hpvm.cmd(sessions(), "ls"));
            assertTrue(ls.out().matches("(?s).*\\nf\\s+v0\\s+0x[0-9a-f]+\\s+3\\s+entry \\+ call sites.*"), ls.out());
            ok(Hpvm.cmd(sessions(), "swap", "f", patch.toString()));
            assertBehaviour(w, w.mark(), (i, z) -> (i + 2) * 111, "every call site runs the new f");
        }
    }
}
