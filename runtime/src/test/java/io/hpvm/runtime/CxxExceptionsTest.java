package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * C++ exceptions unwinding through patched code: the patch's .eh_frame is relocated with it and registered in the
 * worker by the supervisor (__register_frame_info), so a throw from new code, or through new code with a cleanup to
 * run, reaches the caller's catch. Without the registration the same swap makes the worker terminate, which the last
 * test shows.
 */
class CxxExceptionsTest {

    static final String WORKER = """
        #include <cstdio>
        #include <stdexcept>
        #include <string>
        #include <unistd.h>
        struct Tally { static int live; Tally() { live++; } ~Tally() { live--; } };
        int Tally::live;
        __attribute__((noinline)) int parse(int x) {
            if (x % 3 == 0) throw std::runtime_error("multiple of three: " + std::to_string(x));
            return x * 10;
        }
        __attribute__((noinline)) int handle(int x) {
            Tally t;                 // a cleanup the unwinder must run in whichever version is on the stack
            return parse(x) + 1;
        }
        int main() {
            setvbuf(stdout, nullptr, _IOLBF, 0);
            for (int i = 0; ; i++) {
                try { int r = handle(i); std::printf("%d ok %d live %d\\n", i, r, Tally::live); }
                catch (const std::exception &e) { std::printf("%d caught %s live %d\\n", i, e.what(), Tally::live); }
                usleep(20000);
            }
        }
        """;

    @TempDir
    Path dir;

    Path build(String flags) {
        Gcc.write(dir, "server.cc", WORKER);
        Path exe = dir.resolve("server");
        gxx(flags, "-o", exe.toString(), dir.resolve("server.cc").toString());
        return exe;
    }

    Path patch(String name, String source, String flags) {
        Gcc.write(dir, name + ".cc", source);
        Path obj = dir.resolve(name + ".o");
        gxx(flags, "-c", "-o", obj.toString(), dir.resolve(name + ".cc").toString());
        return obj;
    }

    /** Runs g++, or the compiler {@code flags} starts with (clang++), with the flags and {@code rest}. */
    static void gxx(String flags, String... rest) {
        List<String> cmd = new java.util.ArrayList<>();
        if (!flags.startsWith("clang++") && !flags.startsWith("g++")) {
            cmd.add("g++");
        }
        cmd.addAll(List.of(flags.split(" ")));
        cmd.addAll(List.of(rest));
        Gcc.tool(cmd.toArray(new String[0]));
    }

    /** Waits for a line matching {@code what} after the swap and checks the lines after it follow the new code. */
    static void expect(TestWorker w, int mark, java.util.function.Predicate<String> what, String description) {
        int first = w.awaitLineIndex(Math.max(0, mark - 1), what, SwapTest.WAIT);
        for (String line : w.awaitLines(first, 6, SwapTest.WAIT)) {
            String[] f = line.split(" ");
            int i = Integer.parseInt(f[0]);
            if (i % 3 == 0) {
                assertTrue(line.contains(" caught ") && line.endsWith(" live 0"), description + ": " + line + "\n" + w);
            } else {
                assertTrue(line.contains(" ok ") && line.endsWith(" live 0"), description + ": " + line + "\n" + w);
            }
        }
    }

    /**
     * "busy": the worker never waits in a system call (it spins between lines). "no-agent": the worker runs without
     * hpvm's agent thread, so the registration borrows the worker's own thread (with "busy": while it runs user
     * code). "clang++": worker and patches built with clang, whose exception tables point at type_info through
     * cells in plain .data.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"-O2", "-O0", "-O2 -fPIC", "-O2 busy", "-O2 busy no-agent", "clang++ -O2",
        "clang++ -O0 -fPIC"})
    void exceptionsUnwindThroughAndOutOfPatchedCode(String variant) {
        boolean agent = !variant.contains("no-agent");
        variant = variant.replace(" no-agent", "");
        String flags = variant.replace(" busy", "");
        String worker = variant.endsWith("busy")
            ? WORKER.replace("usleep(20000);", "for (volatile long k = 0; k < 20000000; k++) { }") : WORKER;
        Gcc.write(dir, "server.cc", worker);
        Path exe = dir.resolve("server");
        gxx(flags.replace(" -fPIC", ""), "-o", exe.toString(), dir.resolve("server.cc").toString());
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, agent ? List.of() : List.of("--no-agent"), exe)) {
            w.awaitLines(w.mark(), 4, SwapTest.WAIT);
            // handle(): the exception passes through the new code, which must run its cleanup (~Tally).
            Path handle = patch("handle_fix", worker.replace("return parse(x) + 1;", "return parse(x) + 2;"), flags);
            int mark = w.mark();
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "handle", handle.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().contains(agent ? "unwind info registered by hpvm's agent thread "
                + WorkerAgentTest.agentThread(w.pid()) + " in " : "unwind info registered by borrowed thread "
                + w.pid() + " in "), r.out());
            assertTrue(r.out().contains(agent ? "(no worker thread paused)" : "longest pause of a worker thread"),
                r.out());
            expect(w, mark, l -> l.matches("\\d+ ok \\d+2 live 0"), "throw through the new handle()");
            // parse(): the exception is thrown from the new code.
            Path parse = patch("parse_fix", worker.replace("\"multiple of three: \"", "\"v2: three divides \""),
                flags);
            mark = w.mark();
            r = Hpvm.cmd(sessions, "swap", "parse", parse.toString());
            assertEquals(0, r.code(), r.toString());
            expect(w, mark, l -> l.contains("caught v2: three divides"), "throw from the new parse()");
            assertTrue(w.supervisor().isAlive(), w.toString());
        }
    }

    /**
     * A pre-forking C++ server: the unwinder's registry is per process, so the supervisor registers the new code in
     * the worker and in each child; every process keeps catching after the swap.
     */
    @Test
    void everyForkedChildCanUnwindThroughTheNewCode() {
        String forking = WORKER.replace("setvbuf(stdout, nullptr, _IOLBF, 0);",
                "setvbuf(stdout, nullptr, _IOLBF, 0);\n    for (int c = 0; c < 2; c++) { if (fork() == 0) { "
                    + "prctl(PR_SET_PDEATHSIG, SIGKILL); break; } }")
            .replace("#include <unistd.h>", "#include <unistd.h>\n#include <csignal>\n#include <sys/prctl.h>")
            .replace("live %d\\n\", i,", "live %d p%d\\n\", i,")
            .replace("Tally::live); }\n", "Tally::live, (int) getpid()); }\n");
        assertTrue(forking.contains("fork()") && forking.contains("p%d"), forking);
        Gcc.write(dir, "forking.cc", forking);
        Path exe = dir.resolve("forking");
        gxx("-O2", "-o", exe.toString(), dir.resolve("forking.cc").toString());
        Path sessions = dir.resolve("sessions_fork");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            w.awaitLines(w.mark(), 9, SwapTest.WAIT);
            Hpvm.Result ls = Hpvm.cmd(sessions, "ls");
            Path handle = patch("handle_forked", forking.replace("return parse(x) + 1;", "return parse(x) + 2;"),
                "-O2");
            int mark = w.mark();
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "handle", handle.toString());
            assertEquals(0, r.code(), r.toString());
            // The worker through its agent thread; the children (fork copies only the forking thread) by
            // borrowing one of their threads.
            assertTrue(r.out().matches("(?s).*registered by hpvm's agent thread \\d+, borrowed thread \\d+, "
                + "borrowed thread \\d+ in.*"), r.out() + ls.out());
            // Each of the three processes must go on printing new results and catching.
            java.util.Set<String> caughtBy = new java.util.TreeSet<>();
            java.util.Set<String> newBy = new java.util.TreeSet<>();
            int from = mark;
            long deadline = System.nanoTime() + SwapTest.WAIT.toNanos();
            while ((caughtBy.size() < 3 || newBy.size() < 3) && System.nanoTime() < deadline) {
                List<String> lines = w.awaitLines(from, 1, SwapTest.WAIT);
                from++;
                String line = lines.get(0);
                String proc = line.substring(line.lastIndexOf(' ') + 1);
                if (line.matches("\\d+ ok \\d+2 live 0 p\\d+")) {
                    newBy.add(proc);
                } else if (!newBy.isEmpty() && line.contains(" caught ") && newBy.contains(proc)) {
                    caughtBy.add(proc);
                }
            }
            assertEquals(3, newBy.size(), "all three processes run the new handle(): " + newBy + "\n" + w);
            assertEquals(3, caughtBy.size(), "and catch through it: " + caughtBy + "\n" + w);
            assertTrue(!w.stderr().contains("terminate"), w.toString());
        }
    }

    /** 'hpvm patch OLD.cc NEW.cc': C++ sources compiled with c++, the changed function found and swapped. */
    @Test
    void patchFromCxxSources() {
        Path exe = build("-O2");
        Path edited = Gcc.write(dir, "server_new.cc", WORKER.replace("return parse(x) + 1;", "return parse(x) + 2;"));
        Path sessions = dir.resolve("sessions_patch");
        try (TestWorker w = TestWorker.start(sessions, List.of("--cflags", "-O2"), exe)) {
            w.awaitLines(w.mark(), 2, SwapTest.WAIT);
            int mark = w.mark();
            Hpvm.Result r = Hpvm.cmd(sessions, "patch", dir.resolve("server.cc").toString(), edited.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().startsWith("changed functions: _Z6handlei\n") && r.out().contains("unwind info "
                + "registered"), r.toString());
            expect(w, mark, l -> l.matches("\\d+ ok \\d+2 live 0"), "throw through the patched handle()");
        }
    }

    /**
     * A leaf function in another file gets a version that throws: it now writes registers the original never did,
     * so it is entered through the register-preserving thunk, and the exception unwinds through the thunk's frame
     * (thunk.S carries CFI, registered with the new code). The patch also takes the address of a libstdc++
     * type_info with a plain lea, which hpvm turns into a GOT load.
     */
    @Test
    void aLeafFunctionThatNowThrowsUnwindsThroughTheThunk() {
        Gcc.write(dir, "main.cc", """
            #include <cstdio>
            #include <stdexcept>
            #include <unistd.h>
            int check(int x);
            int main() {
                std::setvbuf(stdout, nullptr, _IOLBF, 0);
                for (int i = 0; ; i++) {
                    try { int r = check(i); std::printf("%d ok %d\\n", i, r); }
                    catch (const std::exception &e) { std::printf("%d caught %s\\n", i, e.what()); }
                    usleep(20000);
                }
            }
            """);
        Gcc.write(dir, "check.cc", "int check(int x) { return x * 2; }\n");
        Path exe = dir.resolve("leaf");
        gxx("-O2", "-o", exe.toString(), dir.resolve("main.cc").toString(), dir.resolve("check.cc").toString());
        Path fix = patch("check_fix", "#include <stdexcept>\nint check(int x) { if (x % 5 == 0) "
            + "throw std::invalid_argument(\"multiple of five\"); return x * 2; }\n", "-O2");
        Path sessions = dir.resolve("sessions_leaf");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            w.awaitLines(w.mark(), 2, SwapTest.WAIT);
            int mark = w.mark();
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "check", fix.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().contains("register-preserving thunk") && r.out().contains("unwind info registered"),
                r.out());
            int first = w.awaitLineIndex(Math.max(0, mark - 1), l -> l.endsWith(" caught multiple of five"),
                SwapTest.WAIT);
            for (String line : w.awaitLines(first, 8, SwapTest.WAIT)) {
                int i = Integer.parseInt(line.split(" ")[0]);
                assertEquals(i % 5 == 0 ? i + " caught multiple of five" : i + " ok " + 2 * i, line, w.toString());
            }
        }
    }

    /** The same swap without registration: the unwinder cannot find the new code's frames and terminates. */
    @Test
    void withoutRegistrationTheWorkerTerminates() {
        Path exe = build("-O2");
        Path sessions = dir.resolve("sessions_none");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            w.awaitLines(w.mark(), 2, SwapTest.WAIT);
            Path handle = patch("handle_raw", WORKER.replace("return parse(x) + 1;", "return parse(x) + 2;"), "-O2");
            Hpvm.Result r = Hpvm.cmd(sessions, "swap", "--no-unwind-info", "handle", handle.toString());
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().contains("unwind info not registered"), r.out());
            int status = w.waitExit(Duration.ofSeconds(20));
            assertEquals(128 + 6, status, "SIGABRT from std::terminate\n" + w);
            assertTrue(w.stderr().contains("terminate called after throwing"), w.toString());
        }
    }
}
