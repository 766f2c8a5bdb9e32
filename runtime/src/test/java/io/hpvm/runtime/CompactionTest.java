package io.hpvm.runtime;

import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SiteTable;
import io.hpvm.runtime.session.SlotTable;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code hpvm compact}: the worker's call sites (and redirected entry) are rewritten, with its threads stopped, to
 * branch straight to the current version; a swap or rollback returns the function to routed first. Checked in the
 * worker's own memory and by what it prints.
 */
class CompactionTest {

    /**
     * THREADS (4) threads call compute directly and through a pointer as fast as they can; a value neither version
     * gives aborts.
     */
    static final String THREADED_WORKER = """
        #include <pthread.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        __attribute__((noinline)) long compute(long x) { return x * 2; }
        long (*volatile fp)(long) = compute;
        static void *spin(void *arg) {
            (void) arg;
            for (long i = 1; ; i++) {
                long a = compute(i), b = fp(i);
                if ((a != 2 * i && a != 3 * i) || (b != 2 * i && b != 3 * i)) {
                    fprintf(stderr, "bad %ld %ld %ld\\n", i, a, b);
                    abort();
                }
            }
            return NULL;
        }
        #ifndef THREADS
        #define THREADS 4
        #endif
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            pthread_t t[THREADS];
            for (int k = 0; k < THREADS; k++) pthread_create(&t[k], NULL, spin, NULL);
            for (long i = 0; ; i++) { printf("%ld %ld\\n", i, compute(i)); usleep(20000); }
        }
        """;

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    /** Where compute's call sites and entry branch now, read from the worker's memory. */
    record Text(List<Long> siteTargets, byte[] entry, FunctionRecord fn, long slot, SiteTable.Entry sites) {
    }

    Text text(TestWorker w) throws Exception {
        return text(w, "compute");
    }

    Text text(TestWorker w, String function) throws Exception {
        return text(sessions(), w, function, w.pid());
    }

    /** Where {@code function}'s call sites and entry branch in process {@code pid} of {@code w}'s session. */
    static Text text(Path sessions, TestWorker w, String function, int pid) throws Exception {
        System.setProperty("hpvm.session.root", sessions.toString());
        SessionDir s = SessionDir.find(w.pid());
        FunctionRecord fn;
        try (Registry reg = s.openRegistry()) {
            fn = reg.function(function);
        }
        assertTrue(fn != null, function + " is not patchable\n" + w);
        long slot;
        try (SlotTable slots = SlotTable.open(s.slots())) {
            slot = slots.get(fn.slot());
        }
        SiteTable.Entry e = SiteTable.read(s.sites()).entry(fn.slot());
        try (ProcessMemory mem = new ProcessMemory(pid, false)) {
            List<Long> targets = Arrays.stream(e.displacements()).mapToObj(d -> {
                try {
                    int rel = ByteBuffer.wrap(mem.read(d, 4)).order(ByteOrder.LITTLE_ENDIAN).getInt();
                    return d + 4 + rel;
                } catch (Exception x) {
                    throw new IllegalStateException(x);
                }
            }).toList();
            byte[] entry = e.redirected() ? mem.read(e.patchAt(), e.original().length) : new byte[0];
            return new Text(targets, entry, fn, slot, e);
        }
    }

    static long jumpTarget(Text t) {
        assertEquals((byte) 0xe9, t.entry()[0], "the entry is a jmp rel32");
        return t.sites().patchAt() + 5 + ByteBuffer.wrap(t.entry(), 1, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
    }

    @Test
    void compactedCallsGoStraightToTheCurrentVersionAndSwapsStillWork() throws Exception {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            Text routed = text(w);
            assertFalse(routed.sites().displacements().length == 0, "main calls compute: a site was recorded");
            assertTrue(routed.siteTargets().stream().allMatch(t -> t == routed.fn().stub()), "routed: sites -> stub");
            assertTrue(routed.sites().redirected(), "compute's entry is redirected at launch");
            assertEquals(routed.fn().stub(), jumpTarget(routed), "routed: the entry jumps to the stub");

            Hpvm.Result c = SwapTest.ok(Hpvm.cmd(sessions(), "compact", "compute"));
            assertTrue(c.out().matches("compacted 1 function \\(compute\\): 1 call sites and 1 entries rewritten; the "
                + "worker's thread was stopped for [0-9.]+ ms\\n"), c.out());
            Text v0 = text(w);
            assertTrue(v0.siteTargets().stream().allMatch(t -> t == v0.fn().address()), "compacted v0: sites -> the "
                + "original entry " + v0);
            assertArrayEquals(v0.sites().original(), v0.entry(), "compacted v0: the entry's own bytes are back");
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "compacted, the original code runs");
            assertTrue(SwapTest.ok(Hpvm.cmd(sessions(), "ls")).out().contains("compacted (direct calls)"));
            assertTrue(SwapTest.ok(Hpvm.cmd(sessions(), "compact", "compute")).out().startsWith("nothing to compact"));

            Hpvm.Result s = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "compute", patch.toString()));
            assertTrue(s.out().startsWith("swapped compute: v0 -> v1") && s.out().contains("; first routed 1 function "
                + "(compute): 1 call sites and 1 entries rewritten"), s.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "after the swap of a compacted function");
            Text v1routed = text(w);
            assertTrue(v1routed.siteTargets().stream().allMatch(t -> t == v1routed.fn().stub()));
            assertEquals(v1routed.fn().stub(), jumpTarget(v1routed));
            assertFalse(SwapTest.ok(Hpvm.cmd(sessions(), "ls")).out().contains("compacted"));

            SwapTest.ok(Hpvm.cmd(sessions(), "compact", "--all"));
            Text v1 = text(w);
            assertTrue(v1.siteTargets().stream().allMatch(t -> t == v1.slot()), "compacted v1: sites -> v1 " + v1);
            assertEquals(v1.slot(), jumpTarget(v1), "compacted v1: the entry jumps straight to v1");
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "compacted at v1");

            Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            assertTrue(r.out().contains("first routed 1 function (compute)"), r.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back from compacted");
            assertTrue(SwapTest.ok(Hpvm.cmd(sessions(), "compact", "--undo", "compute")).out()
                .startsWith("nothing to route"));

            assertEquals(2, Hpvm.cmd(sessions(), "compact", "--undo").code(), "--undo without names");
            assertEquals(2, Hpvm.cmd(sessions(), "compact", "--all", "compute").code(), "both");
            Hpvm.Result missing = Hpvm.cmd(sessions(), "compact", "nosuch");
            assertEquals(5, missing.code(), missing.toString());
            assertTrue(missing.err().contains("nosuch"), missing.toString());
        }
    }

    /**
     * Threads that never stop calling the function (directly and through a pointer, so through its entry) while it
     * is compacted, swapped, compacted at v1 and rolled back, many times: none computes a value neither version
     * gives, none crashes, and the worker ends up running the original code.
     */
    @Test
    void busyThreadsSurviveRepeatedCompactionAndSwaps() {
        Path exe = Gcc.executable(dir, "threads", THREADED_WORKER, "-O2", "-pthread");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            int retries = 0;
            int moved = 0;
            for (int round = 0; round < 15; round++) {
                Hpvm.Result c = SwapTest.ok(Hpvm.cmd(sessions(), "compact", "--all"));
                assertTrue(c.out().contains("the worker's 5 threads were stopped"), c.out());
                retries += c.out().contains("retries") ? 1 : 0;
                SwapTest.ok(Hpvm.cmd(sessions(), "swap", "compute", patch.toString()));
                SwapTest.ok(Hpvm.cmd(sessions(), "compact", "compute"));
                Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
                retries += r.out().contains("retries") ? 1 : 0;
                moved += r.out().contains("continued in their copy in the trampoline") ? 1 : 0;
            }
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "after 15 rounds");
            assertFalse(w.stderr().contains("bad "), w.stderr());
            assertEquals(0, retries, "a thread among compute's first instructions is moved, not waited for");
            System.out.println("rounds where a thread was moved out of compute's first instructions: " + moved);
        }
    }
    /**
     * 8 threads calling compute without pause (directly, and through a pointer: its entry) while it goes through
     * 1,000 compactions and as many returns to routed, every tenth of them by a swap or a rollback. Driven from
     * this process through {@link io.hpvm.runtime.swap.SwapEngine}, as the supervisor drives it, so the cycles are
     * not slowed by a command's start (needs ptrace rights over the worker: root, as in CI, or ptrace_scope 0).
     */
    @Test
    void eightThreadsSurviveAThousandCompactionCycles() throws Exception {
        Path exe = Gcc.executable(dir, "threads8", THREADED_WORKER, "-O2", "-pthread", "-DTHREADS=8");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            System.setProperty("hpvm.session.root", sessions().toString());
            var engine = new io.hpvm.runtime.swap.SwapEngine(SessionDir.find(w.pid()));
            int moved = 0;
            int swaps = 0;
            List<Long> pauses = new java.util.ArrayList<>();
            for (int i = 0; i < 1000; i++) {
                var c = engine.compact(List.of("compute"), false, true);
                assertEquals(List.of("compute"), c.functions(), "cycle " + i);
                assertEquals(9, c.threads(), "cycle " + i + ": main and 8 callers stopped");
                pauses.add(c.pauseMicros());
                if (i % 10 == 9) {
                    if (swaps++ % 2 == 0) {
                        assertTrue(engine.swap("compute", patch).toVersion() > 0, "cycle " + i);
                    } else {
                        assertEquals(0, engine.rollback("compute", null).toVersion(), "cycle " + i);
                    }
                } else {
                    var r = engine.compact(List.of("compute"), false, false);
                    assertEquals(List.of("compute"), r.functions(), "cycle " + i);
                    moved += r.moved();
                    pauses.add(r.pauseMicros());
                }
                assertTrue(ProcessHandle.of(w.pid()).map(ProcessHandle::isAlive).orElse(false),
                    "cycle " + i + "\n" + w);
            }
            assertEquals(100, swaps);
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "after 1,000 cycles, 50 swaps and 50 rollbacks");
            assertFalse(w.stderr().contains("bad "), w.stderr());
            pauses.sort(null);
            System.out.println("1,000 cycles: " + moved + " threads moved out of compute's entry; pauses (us): median "
                + pauses.get(pauses.size() / 2) + ", 99th percentile " + pauses.get(pauses.size() * 99 / 100)
                + ", longest " + pauses.get(pauses.size() - 1));
        }
    }

    /** f reached directly, by a tail call, through a pointer; cmp reached only as qsort's callback. */
    static final String PATHS_WORKER = """
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        __attribute__((noinline)) int cmp(const void *a, const void *b) {
            long x = *(const long *) a, y = *(const long *) b;
            return (x > y) - (x < y);
        }
        __attribute__((noinline)) long f(long x) { return x * 2; }
        __attribute__((noinline)) long tail(long x) { return f(x + 0); }
        long (*volatile fp)(long) = f;
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (long i = 0; ; i++) {
                long a[3] = {3, 1, 2};
                qsort(a, 3, sizeof a[0], cmp);
                printf("%ld %ld %ld %ld %ld%ld%ld\\n", i, f(i), tail(i), fp(i), a[0], a[1], a[2]);
                usleep(20000);
            }
        }
        """;

    /** Waits for a line where every path gives {@code k * i} and qsort sorted into {@code order}, then checks 5 more. */
    static void assertPaths(TestWorker w, long k, String order, String what) {
        java.util.function.Predicate<String> ok = line -> {
            String[] f = line.trim().split(" ");
            long i = Long.parseLong(f[0]);
            return f.length == 5 && Long.parseLong(f[1]) == k * i && Long.parseLong(f[2]) == k * i
                && Long.parseLong(f[3]) == k * i && f[4].equals(order);
        };
        int first = w.awaitLineIndex(w.mark(), ok, java.time.Duration.ofSeconds(20));
        for (String line : w.awaitLines(first, 5, java.time.Duration.ofSeconds(20))) {
            assertTrue(ok.test(line), what + ": '" + line + "'\n" + w);
        }
    }

    @Test
    void everyPathRunsTheCurrentVersionInEachState() {
        Path exe = Gcc.executable(dir, "paths", PATHS_WORKER, "-O2");
        Path f3 = Gcc.object(dir, "f3", "long f(long x) { return x * 3; }\n", "-O2");
        Path desc = Gcc.object(dir, "desc", """
            int cmp(const void *a, const void *b) {
                long x = *(const long *) a, y = *(const long *) b;
                return (x < y) - (x > y);
            }
            """, "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            assertPaths(w, 2, "123", "routed v0");
            SwapTest.ok(Hpvm.cmd(sessions(), "compact", "f", "cmp"));
            assertPaths(w, 2, "123", "compacted v0");
            assertTrue(SwapTest.ok(Hpvm.cmd(sessions(), "swap", "f", f3.toString())).out().contains("first routed"));
            assertTrue(SwapTest.ok(Hpvm.cmd(sessions(), "swap", "cmp", desc.toString())).out()
                .contains("first routed"));
            assertPaths(w, 3, "321", "swapped from compacted");
            SwapTest.ok(Hpvm.cmd(sessions(), "compact", "f", "cmp"));
            assertPaths(w, 3, "321", "compacted v1");
            SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "f"));
            SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "cmp"));
            assertPaths(w, 2, "123", "rolled back from compacted v1");
            SwapTest.ok(Hpvm.cmd(sessions(), "compact", "--all"));
            assertPaths(w, 2, "123", "compacted v0 again");
        }
    }

    /**
     * A thread parked in a system call among parked()'s first instructions (the entry's bytes the jump covers), from
     * the asm below: it blocks in pause() until SIGUSR1 (which only it takes), then returns 1.
     */
    static final String PARKED_WORKER = """
        #include <pthread.h>
        #include <signal.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/syscall.h>
        #include <unistd.h>
        long parked(long nr);
        __asm__(".text\\n.globl parked\\n.type parked, @function\\nparked:\\n"
                "  mov %edi, %eax\\n"     /* 2 bytes */
                "  syscall\\n"            /* 2 bytes: the thread waits with rip = parked + 4 */
                "  nopl 0(%rax)\\n"       /* 4 bytes: the jump covers these 8 */
                "  mov $1, %eax\\n  ret\\n.size parked, .-parked\\n");
        static void on_usr1(int sig) { (void) sig; }
        static void *caller(void *arg) {
            (void) arg;
            for (;;) printf("parked returned %ld\\n", parked(SYS_pause));
            return NULL;
        }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_usr1;
            sigaction(SIGUSR1, &sa, NULL);
            pthread_t t;
            pthread_create(&t, NULL, caller, NULL);
            sigset_t usr1;
            sigemptyset(&usr1);
            sigaddset(&usr1, SIGUSR1);
            pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* a SIGUSR1 to the process goes to the caller thread */
            printf("ready\\n");
            for (;;) sleep(3600);
        }
        """;

    /** The instruction pointer of the worker's thread blocked in pause(), from /proc (-1 until there is one). */
    static long pausedAt(int pid) throws Exception {
        // No threads once the worker is gone: the assertion message shows its supervisor's stderr, how it ended.
        for (int tid : io.hpvm.runtime.linux.ProcFs.threads(pid)) {
            String[] f = java.nio.file.Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/syscall")).trim()
                .split(" ");
            if (f[0].equals("34") && f.length == 9) { // SYS_pause, 6 arguments, sp, pc
                return Long.decode(f[8]);
            }
        }
        return -1;
    }

    static long awaitPausedAt(TestWorker w, long where, String what) throws Exception {
        long at = -1;
        for (int i = 0; i < 200 && at != where; i++) {
            Thread.sleep(25);
            at = pausedAt(w.pid());
        }
        assertEquals(Long.toHexString(where), Long.toHexString(at), what + "\n" + w);
        return at;
    }

    /**
     * The hazard of routing a function compacted at version 0: putting the jump back over its first instructions
     * while a thread is stopped among them. Here the thread is parked there in a system call, deterministically;
     * the swap moves it to the trampoline's copy, where the kernel restarts its pause(), and when woken it finishes
     * the old call there and makes the next call to the new version.
     */
    @Test
    void aThreadParkedAmongTheEntrysFirstInstructionsContinuesInTheTrampoline() throws Exception {
        Path exe = Gcc.executable(dir, "parked", PARKED_WORKER, "-O2", "-pthread");
        Path v2 = Gcc.object(dir, "v2", "#include <unistd.h>\nlong parked(long nr) { (void) nr; pause(); return 2; }\n",
            "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            w.awaitLine(0, "ready"::equals, java.time.Duration.ofSeconds(20));
            Text routed = text(w, "parked");
            assertTrue(routed.sites().redirected(), "parked's entry is redirected\n" + w);
            long entry = routed.sites().patchAt();
            long trampoline = routed.fn().trampoline();
            awaitPausedAt(w, trampoline + 4, "routed: the call went through the stub to the trampoline");

            SwapTest.ok(Hpvm.cmd(sessions(), "compact", "parked"));
            int mark = w.mark();
            io.hpvm.runtime.linux.LibC.INSTANCE.kill(w.pid(), 10); // SIGUSR1
            w.awaitLine(mark, "parked returned 1"::equals, java.time.Duration.ofSeconds(20));
            awaitPausedAt(w, entry + 4, "compacted at v0: the next call runs the original entry and parks in it");

            Hpvm.Result s = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "parked", v2.toString()));
            assertTrue(s.out().contains("first routed 1 function (parked)") && s.out().contains("1 thread was among "
                + "an entry's first instructions and continued in their copy in the trampoline"), s.out());
            assertTrue(s.out().startsWith("swapped parked: v0 -> v1"), s.out());
            awaitPausedAt(w, trampoline + 4, "moved to the trampoline's copy, its pause() restarted there");
            assertEquals(mark + 1, w.mark(), "the parked call did not return early\n" + w);

            io.hpvm.runtime.linux.LibC.INSTANCE.kill(w.pid(), 10);
            w.awaitLine(mark + 1, "parked returned 1"::equals, java.time.Duration.ofSeconds(20));
            Thread.sleep(200);
            io.hpvm.runtime.linux.LibC.INSTANCE.kill(w.pid(), 10);
            w.awaitLine(mark + 2, "parked returned 2"::equals, java.time.Duration.ofSeconds(20));
            assertEquals(List.of("parked returned 1", "parked returned 1", "parked returned 2"),
                w.awaitLines(mark, 3, java.time.Duration.ofSeconds(5)).subList(0, 3), w.toString());
        }
    }
}
