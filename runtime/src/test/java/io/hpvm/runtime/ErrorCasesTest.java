package io.hpvm.runtime;

import io.hpvm.testing.Gcc;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every error class of {@code hpvm swap}/{@code rollback}/{@code run}: the exit code, a message naming the thing,
 * and (for swaps) a worker that still runs its old code afterwards.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ErrorCasesTest {

    @TempDir
    static Path dir;
    TestWorker worker;

    Path sessions() {
        return dir.resolve("sessions");
    }

    @BeforeAll
    void startWorker() {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        worker = TestWorker.start(sessions(), List.of(), exe);
    }

    @AfterAll
    void stopWorker() {
        worker.close();
    }

    /**
     * Runs a command that must fail with {@code code} and a message containing {@code fragments}, both through the
     * worker's supervisor and in this process (the slow path): the two must say exactly the same.
     */
    Hpvm.Result fails(int code, String[] fragments, String... args) {
        Hpvm.Result r = Hpvm.cmd(sessions(), args);
        Hpvm.Result direct = Hpvm.direct(sessions(), args);
        Hpvm.Result nativeClient = Hpvm.viaNative(sessions(), args);
        for (Hpvm.Result x : List.of(r, direct, nativeClient)) {
            assertEquals(code, x.code(), x.toString());
            for (String f : fragments) {
                assertTrue(x.err().contains(f), "message should mention '" + f + "': " + x);
            }
        }
        assertEquals(direct.err(), r.err(), "the supervisor and the slow path say the same");
        assertEquals(direct.out(), r.out(), "the supervisor and the slow path print the same");
        assertEquals(direct.err(), nativeClient.err(), "the native client and the slow path say the same");
        assertEquals(direct.out(), nativeClient.out(), "the native client and the slow path print the same");
        return r;
    }

    void stillRunsOldCode() {
        SwapTest.assertBehaviour(worker, worker.mark(), (i, z) -> i * 2, "the worker still runs the old code");
    }

    Path object(String name, String source, String... flags) {
        return Gcc.object(dir, name, source, flags.length == 0 ? new String[] {"-O2"} : flags);
    }

    @Test
    @Order(1)
    void unknownFunction() {
        Path o = object("ok", "long compute(long x) { return x * 3; }\n");
        fails(5, new String[] {"no patchable function 'nosuch'", "loop"}, "swap", "nosuch", o.toString());
        stillRunsOldCode();
    }

    @Test
    @Order(2)
    void missingNonElfAndWrongTypeObjects() throws IOException {
        fails(4, new String[] {"missing.o", "no such file"}, "swap", "compute", dir.resolve("missing.o").toString());
        Path text = Files.writeString(dir.resolve("notes.o"), "this is not an object file\n".repeat(10));
        fails(4, new String[] {"notes.o", "not an ELF file"}, "swap", "compute", text.toString());
        Path exe = Gcc.executable(dir, "other", "int main(void) { return 0; }\n");
        fails(4, new String[] {"other", "wrong ELF type", "ET_REL"}, "swap", "compute", exe.toString());
        stillRunsOldCode();
    }

    @Test
    @Order(3)
    void objectWithoutTheFunction() {
        Path o = object("elsewhere", "long other(long x) { return x; }\n");
        fails(5, new String[] {"elsewhere.o", "defines no function 'compute'", "other"}, "swap", "compute",
            o.toString());
        stillRunsOldCode();
    }

    @Test
    @Order(4)
    void unresolvedSymbolsAreAllListed() {
        Path o = object("unresolved", """
            long missing_b(long); long missing_a(long);
            long compute(long x) { return missing_a(x) + missing_b(x); }
            """);
        fails(5, new String[] {"unresolved.o", "cannot resolve 2 symbol(s)", "missing_a, missing_b"}, "swap",
            "compute", o.toString());
        stillRunsOldCode();
    }

    @Test
    @Order(5)
    void newWritableDataIsRefused() {
        Path o = object("stateful", """
            static long calls;
            long compute(long x) { calls++; return x * 2 + calls; }
            """);
        fails(6, new String[] {"stateful.o", "writable data 'calls'", "stateless"}, "swap", "compute", o.toString());
        stillRunsOldCode();
    }

    @Test
    @Order(6)
    void threadLocalDataIsRefused() {
        Path o = object("tls", """
            __thread long per_thread;
            long compute(long x) { return x * 2 + per_thread; }
            """);
        fails(6, new String[] {"tls.o", "thread-local", "per_thread"}, "swap", "compute", o.toString());
        stillRunsOldCode();
    }

    @Test
    @Order(7)
    void unsupportedRelocationIsNamed() {
        Path o = Gcc.object(dir, "r16.s", """
                    .text
                    .globl compute
                    .type compute, @function
            compute:
                    lea table(%rip), %rax
                    ret
                    .size compute, .-compute
                    .section .rodata
            table:
                    .word compute
            """);
        fails(5, new String[] {"r16.o", "unsupported relocation R_X86_64_16", ".rodata+0x0"}, "swap", "compute",
            o.toString());
        stillRunsOldCode();
    }

    @Test
    @Order(8)
    void sessionErrors() throws IOException {
        fails(3, new String[] {"no hpvm session for pid 999999"}, "swap", "--pid", "999999", "compute", "x.o");
        Path stale = Files.createDirectories(sessions().resolve("4000000"));
        try {
            fails(3, new String[] {"pid 4000000", "no longer running", "stale"}, "ls", "--pid", "4000000");
            // A stale session does not count: the one live worker is still found without --pid.
            Hpvm.Result ls = Hpvm.cmd(sessions(), "ls", "--sessions");
            assertTrue(ls.out().contains("4000000  stale"), ls.toString());
        } finally {
            Files.delete(stale);
        }
        // A pid that now belongs to another process (pid 1 never mapped our files).
        Path reused = Files.createDirectories(sessions().resolve("1"));
        try {
            fails(3, new String[] {"pid 1", "now belongs to another process"}, "rollback", "--pid", "1", "compute");
        } finally {
            Files.delete(reused);
        }
        Path exe = Gcc.executable(dir, "second", SwapTest.LOOP_WORKER, "-O0");
        try (TestWorker second = TestWorker.start(sessions(), List.of(), exe)) {
            fails(3, new String[] {"2 workers are running under hpvm", "--pid"}, "swap", "compute",
                object("ok2", "long compute(long x) { return x * 3; }\n").toString());
            Hpvm.Result ls = Hpvm.cmd(sessions(), "ls");
            assertTrue(ls.out().contains(Integer.toString(second.pid())) && ls.out().contains(
                Integer.toString(worker.pid())), ls.toString());
        }
        stillRunsOldCode();
    }

    @Test
    @Order(9)
    void nativeClientServesTheCommonCaseAndLeavesTheRestToJava() {
        Hpvm.Result n = Hpvm.nativeOnly(sessions(), "ls");
        assertEquals(0, n.code(), "the native client itself served 'ls': " + n);
        assertEquals(Hpvm.cmd(sessions(), "ls").out(), n.out());
        assertEquals(0, Hpvm.nativeOnly(sessions(), "ls", "--pid", Integer.toString(worker.pid())).code());
        for (String[] args : List.of(new String[] {"ls", "--help"}, new String[] {"swap", "-V"},
            new String[] {"ls", "--sessions"}, new String[] {"ls", "--pid", "12x"}, new String[] {"ls", "--pid",
            "999999"}, new String[] {"run", "/bin/true"}, new String[] {"bogus"}, new String[0])) {
            Hpvm.Result r = Hpvm.nativeOnly(sessions(), args);
            assertEquals(254, r.code(), "left to Java: " + String.join(" ", args) + "\n" + r);
            assertEquals("", r.out() + r.err(), "and printed nothing");
        }
    }

    @Test
    @Order(10)
    void usageErrors() {
        fails(2, new String[] {"OBJECT"}, "swap", "compute");
        fails(2, new String[] {"runs v0, the original code", "no change to it is left to undo"}, "rollback", "compute");
        fails(2, new String[] {"--arena-size"}, "run", "--arena-size", "12Q", "/bin/true");
        stillRunsOldCode();
    }

    @Test
    @Order(11)
    void runRefusesWhatIsNotAnX8664Executable() throws IOException {
        fails(4, new String[] {"nonexistent", "no such file"}, "run", dir.resolve("nonexistent").toString());
        Path script = Files.writeString(dir.resolve("script.sh"), "#!/bin/sh\necho hi\n");
        script.toFile().setExecutable(true);
        fails(4, new String[] {"script.sh", "not an ELF file"}, "run", script.toString());
        Path obj = object("justobj", "int f(void) { return 1; }\n");
        obj.toFile().setExecutable(true);
        fails(4, new String[] {"justobj.o", "wrong ELF type"}, "run", obj.toString());
    }

    @Test
    @Order(12)
    void fullArenaIsASystemFailureThatChangesNothing() {
        Path exe = Gcc.executable(dir, "tiny_arena", SwapTest.LOOP_WORKER, "-O2");
        // 4 KiB of arena: the patch below needs more (a 5000-byte table of constants).
        Path big = object("big", """
            static const long table[625] = { [0] = 3, [624] = 3 };
            long compute(long x) { return x * table[(x & 1) * 624]; }
            """);
        try (TestWorker small = TestWorker.start(sessions(), List.of("--arena-size", "4K"), exe)) {
            Hpvm.Result r = fails(7, new String[] {"code arena", "is full", "--arena-size"}, "swap", "--pid",
                Integer.toString(small.pid()), "compute", big.toString());
            SwapTest.assertBehaviour(small, small.mark(), (i, z) -> i * 2, "still the original after a full arena");
            assertTrue(r.err().contains("big.o: 'compute' does not fit") && r.err().contains(".rodata alone is 5000 "
                + "bytes"), "the refusal says what does not fit, from the section sizes: " + r);
        }
    }

    @Test
    @Order(13)
    void concurrentSwapsAreSerialised() {
        List<CompletableFuture<Hpvm.Result>> runs = new ArrayList<>();
        // Two through the Java client in this JVM, two through the native one (separate processes), all at once;
        // four different objects (the same object twice in a row would be a no-op, "already applied").
        for (int k = 3; k <= 6; k += 2) {
            Path odd = object("times" + k, "long compute(long x) { return x * " + k + "; }\n");
            Path even = object("times" + (k + 1), "long compute(long x) { return x * " + (k + 1) + "; }\n");
            runs.add(CompletableFuture.supplyAsync(() -> Hpvm.cmd(sessions(), "swap", "compute", odd.toString())));
            runs.add(CompletableFuture.supplyAsync(() -> Hpvm.nativeOnly(sessions(), "swap", "compute",
                even.toString())));
        }
        List<String> versions = new ArrayList<>();
        for (CompletableFuture<Hpvm.Result> f : runs) {
            Hpvm.Result r = f.join();
            assertEquals(0, r.code(), r.toString());
            versions.add(r.out().replaceAll("(?s).* -> (v\\d+) .*", "$1"));
        }
        versions.sort(null);
        assertEquals(List.of("v1", "v2", "v3", "v4"), versions, "each swap got its own version");
        Hpvm.Result ls = Hpvm.cmd(sessions(), "ls", "--patched");
        assertTrue(ls.out().matches("(?s).*\\ncompute\\s+v4/4\\s.*"), ls.toString());
    }
}
