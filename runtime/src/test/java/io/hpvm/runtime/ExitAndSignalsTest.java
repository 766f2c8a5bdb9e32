package io.hpvm.runtime;

import io.hpvm.testing.Gcc;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code hpvm run} as the worker's parent: exit status, signal forwarding, stdio, session clean-up. */
class ExitAndSignalsTest {

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    @Test
    void exitStatusArgumentsAndStdioAreTheWorkers() throws IOException {
        Path exe = Gcc.executable(dir, "echo", """
            #include <stdio.h>
            #include <string.h>
            int main(int argc, char **argv) {
                char line[100];
                printf("args %d %s %s\\n", argc, argv[1], argv[2]);
                if (fgets(line, sizeof line, stdin)) printf("got %s", line);
                fprintf(stderr, "to stderr\\n");
                return 42;
            }
            """, "-O2");
        TestWorker w = TestWorker.start(sessions(), List.of(), exe, "one", "--two");
        try (OutputStream in = w.supervisor().getOutputStream()) {
            in.write("hello\n".getBytes(StandardCharsets.UTF_8));
        }
        assertEquals(42, w.waitExit(Duration.ofSeconds(20)), w.toString());
        assertEquals("args 3 one --two\ngot hello", w.stdout());
        assertTrue(w.stderr().contains("to stderr"), w.stderr());
        assertFalse(Files.exists(sessions().resolve(Integer.toString(w.pid()))), "session removed on exit");
    }

    @Test
    void deathBySignalIs128PlusN() {
        Path exe = Gcc.executable(dir, "abort", """
            #include <stdlib.h>
            int main(void) { abort(); }
            """);
        TestWorker w = TestWorker.launch(sessions(), List.of("--quiet"), exe);
        assertEquals(134, w.waitExit(Duration.ofSeconds(20)), w.toString());
        assertEquals("", w.stderr(), "--quiet prints nothing");
    }

    @ParameterizedTest(name = "SIG{0}")
    @CsvSource({"TERM,15", "INT,2", "HUP,1"})
    void signalsAreForwarded(String name, int number) throws Exception {
        Path exe = Gcc.executable(dir, "sleeper", """
            #include <stdio.h>
            #include <unistd.h>
            int main(void) { setvbuf(stdout, NULL, _IOLBF, 0); for (;;) { puts("alive"); usleep(50000); } }
            """);
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            w.awaitLine(0, "alive"::equals, Duration.ofSeconds(20));
            long supervisor = w.supervisor().pid();
            Process kill = new ProcessBuilder("kill", "-" + name, Long.toString(supervisor)).start();
            assertEquals(0, kill.waitFor());
            assertEquals(128 + number, w.waitExit(Duration.ofSeconds(20)), w.toString());
            assertFalse(Files.exists(sessions().resolve(Integer.toString(w.pid()))), "session removed");
        }
    }

    @Test
    void sigquitIsForwardedToo() throws Exception {
        Path exe = Gcc.executable(dir, "quitter", """
            #include <signal.h>
            #include <stdio.h>
            #include <unistd.h>
            static void on_quit(int sig) { printf("worker got signal %d\\n", sig); fflush(stdout); _exit(7); }
            int main(void) {
                signal(SIGQUIT, on_quit);
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (;;) { puts("alive"); usleep(50000); }
            }
            """);
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            w.awaitLine(0, "alive"::equals, Duration.ofSeconds(20));
            Process kill = new ProcessBuilder("kill", "-QUIT", Long.toString(w.supervisor().pid())).start();
            assertEquals(0, kill.waitFor());
            assertEquals(7, w.waitExit(Duration.ofSeconds(20)), w.toString());
            assertTrue(w.stdout().endsWith("worker got signal 3"), w.stdout());
            assertFalse(w.stderr().contains("Full thread dump"), "the JVM did not take SIGQUIT for itself");
        }
    }
}
