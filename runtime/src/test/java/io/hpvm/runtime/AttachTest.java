package io.hpvm.runtime;

import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code hpvm attach}: real programs started without hpvm (this test is their parent), taken over while they run by
 * a real {@code hpvm attach} (a separate JVM that leaves a background supervisor), then swapped and rolled back
 * through that supervisor.
 */
class AttachTest {

    /** Like SwapTest's loop, but ends with status 42 once the file named by its argument exists. */
    static final String LOOP_UNTIL_FILE = """
        #include <stdio.h>
        #include <unistd.h>
        __attribute__((noinline)) long compute(long x) { return x * 2; }
        int main(int argc, char **argv) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (long i = 0; access(argv[1], F_OK) != 0; i++) { printf("%ld %ld\\n", i, compute(i)); usleep(20000); }
            return 42;
        }
        """;

    private static final Pattern BACKGROUND = Pattern.compile("hpvm: supervisor pid (\\d+) serves the session in the "
        + "background; its log: (\\S+)");

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    record Attached(int code, String err, int supervisor) {
    }

    /** Background supervisors this test started: each ends with its process, before the temporary dir goes. */
    private final List<Integer> supervisors = new java.util.ArrayList<>();

    @org.junit.jupiter.api.AfterEach
    void supervisorsEnd() throws InterruptedException {
        for (int pid : supervisors) {
            awaitGone(pid, "the background supervisor " + pid + " ends when its process does");
        }
    }

    Attached attach(int pid, String... options) throws Exception {
        Attached a = attach(sessions(), pid, options);
        if (a.supervisor() > 0) {
            supervisors.add(a.supervisor());
        }
        return a;
    }

    /** Runs {@code hpvm attach [options] PID} as a user would, in its own JVM; returns when that command does. */
    static Attached attach(Path sessions, int pid, String... options) throws Exception {
        List<String> cmd = TestWorker.hpvmCommand("attach");
        cmd.addAll(List.of(options));
        cmd.add(Integer.toString(pid));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD);
        pb.environment().put("HPVM_SESSION_ROOT", sessions.toString());
        Process p = pb.start();
        p.getOutputStream().close();
        byte[] err = p.getErrorStream().readAllBytes(); // EOF: the command and the supervisor's end of the pipe closed
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "hpvm attach did not return");
        String text = new String(err, StandardCharsets.UTF_8);
        Matcher m = BACKGROUND.matcher(text);
        return new Attached(p.exitValue(), text, m.find() ? Integer.parseInt(m.group(1)) : -1);
    }

    /** Waits until process {@code pid} has ended (a supervisor ends with the process it serves). */
    static void awaitGone(int pid, String what) throws InterruptedException {
        for (int i = 0; i < 400 && ProcFs.state(pid) != '?' && ProcFs.state(pid) != 'Z'; i++) {
            Thread.sleep(25);
        }
        assertTrue(ProcFs.state(pid) == '?' || ProcFs.state(pid) == 'Z', what);
    }

    @Test
    void attachesToARunningProgramSwapsRollsBackAndTheProgramExitsWithItsOwnStatus() throws Exception {
        Path exe = Gcc.executable(dir, "loop", LOOP_UNTIL_FILE, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        Path stop = dir.resolve("stop");
        try (TestWorker w = TestWorker.startNative(exe, stop.toString())) {
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "before hpvm attach");
            Attached a = attach(w.pid());
            assertEquals(0, a.code(), a.err());
            assertTrue(a.err().matches("(?s)hpvm: attached to " + Pattern.quote(exe.toString()) + " \\(pid " + w.pid()
                + "\\) in \\d+ ms, its 1 thread stopped for [0-9.]+ ms: \\d+ functions patchable, \\d+ call sites "
                + "rewritten, \\d+ entries redirected; session .*\n" + BACKGROUND.pattern() + "\n"), a.err());
            assertTrue(a.supervisor() > 0 && ProcFs.state(a.supervisor()) != '?', "the supervisor runs on\n" + a.err());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "attached, nothing swapped yet");

            Hpvm.Result s = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--pid", Integer.toString(w.pid()), "compute",
                patch.toString()));
            assertTrue(s.out().startsWith("swapped compute: v0 -> v1 at 0x"), s.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "after the swap");
            Hpvm.Result ls = SwapTest.ok(Hpvm.cmd(sessions(), "ls", "--pid", Integer.toString(w.pid())));
            assertTrue(ls.out().matches("(?s).*\\ncompute\\s+v1/1\\s+0x[0-9a-f]+\\s+1\\s+entry \\+ call sites.*"),
                ls.out());
            SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "--pid", Integer.toString(w.pid()), "compute"));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "after the rollback");

            Files.writeString(stop, "");
            assertEquals(42, w.waitExit(Duration.ofSeconds(20)), "the program's own exit status\n" + w);
            awaitGone(a.supervisor(), "the background supervisor ends when the process does");
            assertFalse(Files.exists(sessions().resolve(Integer.toString(w.pid()))), "the session is removed");
        }
    }

    /** The bytes of {@code exe}'s executable mapping(s) in process {@code pid}. */
    static byte[] text(int pid, Path exe) throws Exception {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        try (io.hpvm.runtime.linux.ProcessMemory mem = new io.hpvm.runtime.linux.ProcessMemory(pid, false)) {
            for (ProcFs.Mapping m : ProcFs.maps(pid)) {
                if (m.path().equals(exe.toString()) && m.perms().startsWith("r-x")) {
                    out.write(mem.read(m.start(), (int) (m.end() - m.start())));
                }
            }
        }
        return out.toByteArray();
    }

    /**
     * Detach after a swap: the program's text is byte for byte what it was before hpvm attached, hpvm's regions are
     * gone from its address space, the supervisor and the session end, and the program runs on to its own exit.
     */
    @Test
    void detachGivesBackTheOriginalCodeByteForByteAndUnmapsHpvm() throws Exception {
        Path exe = Gcc.executable(dir, "loop", LOOP_UNTIL_FILE, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        Path stop = dir.resolve("stop");
        try (TestWorker w = TestWorker.startNative(exe, stop.toString())) {
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "before hpvm attach");
            byte[] before = text(w.pid(), exe);
            int mappings = ProcFs.maps(w.pid()).size();
            Attached a = attach(w.pid());
            assertEquals(0, a.code(), a.err());
            String pid = Integer.toString(w.pid());
            assertFalse(java.util.Arrays.equals(before, text(w.pid(), exe)), "attach rewrote the text");
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--pid", pid, "compute", patch.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "after the swap");

            Hpvm.Result d = SwapTest.ok(Hpvm.cmd(sessions(), "detach", "--pid", pid));
            assertTrue(d.out().matches("detached from process " + pid + ": 1 function back at version 0, original "
                + "code everywhere \\(\\d+ call sites and \\d+ entries rewritten; threads stopped for [0-9.]+ ms\\); "
                + "hpvm's code unmapped \\(threads stopped for [0-9.]+ ms\\)\n"), d.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "after detach");
            assertTrue(java.util.Arrays.equals(before, text(w.pid(), exe)), "the text is what it was before attach");
            assertEquals(mappings, ProcFs.maps(w.pid()).size(), "hpvm's mappings are gone: "
                + ProcFs.maps(w.pid()));
            awaitGone(a.supervisor(), "the supervisor ends with the session");
            assertFalse(Files.exists(sessions().resolve(pid)), "the session is removed");
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "running on");
            Files.writeString(stop, "");
            assertEquals(42, w.waitExit(Duration.ofSeconds(20)), "the program's own exit status\n" + w);
        }
    }

    /** detach --keep-patches: the fix stays, called directly, without hpvm's supervisor. */
    @Test
    void detachKeepingThePatchesLeavesTheFixInPlace() throws Exception {
        Path exe = Gcc.executable(dir, "threads", CompactionTest.THREADED_WORKER, "-O2", "-pthread");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.startNative(exe)) {
            Attached a = attach(w.pid());
            assertEquals(0, a.code(), a.err());
            String pid = Integer.toString(w.pid());
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--pid", pid, "compute", patch.toString()));
            Hpvm.Result d = SwapTest.ok(Hpvm.cmd(sessions(), "detach", "--pid", pid, "--keep-patches"));
            assertTrue(d.out().startsWith("detached from process " + pid + ": the current version of every function "
                + "stays in place, called directly") && d.out().contains("hpvm's code stays mapped: the current "
                + "versions run from them"), d.out());
            awaitGone(a.supervisor(), "the supervisor ends with the session");
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "the fix stays after detach");
            assertFalse(w.stderr().contains("bad"), w.stderr());
        }
    }

    @Test
    void detachIsRefusedForAProgramStartedByHpvmRun() throws Exception {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            Hpvm.Result d = Hpvm.cmd(sessions(), "detach");
            assertEquals(6, d.code(), d.toString());
            assertTrue(d.err().contains("was started by hpvm run, whose supervisor is its parent"), d.err());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "untouched");
        }
    }

    /** A pre-forked server: the master forks three workers that print "i k compute(i)", then waits. */
    static final String PREFORKED = """
        #include <stdio.h>
        #include <unistd.h>
        __attribute__((noinline)) long compute(long x) { return x * 2; }
        int main(void) {
            setvbuf(stdout, NULL, _IOLBF, 0);
            for (int k = 0; k < 3; k++) {
                if (fork() == 0) {
                    for (long i = 0; ; i++) { printf("%ld %d %ld\\n", i, k, compute(i)); usleep(20000); }
                }
            }
            for (;;) pause();
        }
        """;

    /** Waits until each of the three workers printed a line whose value is {@code factor} times its counter. */
    private static void awaitEveryWorker(TestWorker w, long factor, String what) {
        for (int k = 0; k < 3; k++) {
            String worker = Integer.toString(k);
            w.awaitLine(w.mark(), l -> {
                String[] f = l.split(" ");
                return f.length == 3 && f[1].equals(worker) && Long.parseLong(f[2]) == factor * Long.parseLong(f[0]);
            }, SwapTest.WAIT);
        }
    }

    /** --children: the master and its three forked workers are one session; a swap and a detach reach all. */
    @Test
    void aPreForkedServerIsTakenOverAsOneSession() throws Exception {
        Path exe = Gcc.executable(dir, "prefork", PREFORKED, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        TestWorker w = TestWorker.startNative(exe);
        List<Integer> workers = List.of();
        try {
            awaitEveryWorker(w, 2, "before hpvm attach");
            workers = ProcFs.descendants(w.pid()).stream().filter(p -> p != w.pid()).toList();
            assertEquals(3, workers.size(), "three workers: " + workers);
            Attached a = attach(w.pid(), "--children");
            assertEquals(0, a.code(), a.err());
            assertTrue(a.err().contains("(pid " + w.pid() + " and 3 forked copies)"), a.err());
            String pid = Integer.toString(w.pid());
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--pid", pid, "compute", patch.toString()));
            awaitEveryWorker(w, 3, "after one swap");
            Hpvm.Result d = SwapTest.ok(Hpvm.cmd(sessions(), "detach", "--pid", pid));
            assertTrue(d.out().contains("hpvm's code unmapped"), d.out());
            awaitEveryWorker(w, 2, "after detach");
            for (int p : workers) {
                assertTrue(ProcFs.maps(p).stream().noneMatch(m -> m.path().contains(sessions().toString())),
                    "hpvm's regions are gone from worker " + p);
            }
        } finally {
            for (int p : workers) {
                LibC.INSTANCE.kill(p, 9);
            }
            w.close();
        }
    }

    /**
     * Four threads call compute as fast as they can, directly and through a pointer, while hpvm attaches, swaps and
     * rolls back: every value is one a version computes (the worker aborts otherwise), and the pointer calls reach
     * the new version too (the entry was redirected while they ran).
     */
    @Test
    void fourThreadsCallingWithoutPauseSurviveAttachSwapAndRollback() throws Exception {
        Path exe = Gcc.executable(dir, "threads", CompactionTest.THREADED_WORKER, "-O2", "-pthread");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.startNative(exe)) {
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "before hpvm attach");
            Attached a = attach(w.pid());
            assertEquals(0, a.code(), a.err());
            assertTrue(a.err().contains("its 5 threads stopped for "), a.err());
            String pid = Integer.toString(w.pid());
            for (int round = 0; round < 3; round++) {
                SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--pid", pid, "compute", patch.toString()));
                SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "after swap " + round);
                SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "--pid", pid, "compute"));
                SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "after rollback " + round);
            }
            assertTrue(w.supervisor().isAlive(), "the worker still runs\n" + w);
            assertFalse(w.stderr().contains("bad"), w.stderr());
            w.close();
            awaitGone(a.supervisor(), "the background supervisor ends when the process does");
        }
    }

    /**
     * A thread blocked in a system call among a function's first instructions when hpvm attaches: writing the
     * entry's jump moves it to their copy in the trampoline, where the kernel restarts its pause(); woken, it
     * finishes the call there, and its next call goes through the stub.
     */
    @Test
    void aThreadParkedInAnEntryWhenHpvmAttachesContinuesInTheTrampoline() throws Exception {
        Path exe = Gcc.executable(dir, "parked", CompactionTest.PARKED_WORKER, "-O2", "-pthread");
        Path v2 = Gcc.object(dir, "v2", "#include <unistd.h>\nlong parked(long nr) { (void) nr; pause(); return 2; }\n",
            "-O2");
        try (TestWorker w = TestWorker.startNative(exe)) {
            w.awaitLine(0, "ready"::equals, Duration.ofSeconds(20));
            long entry = symbol(exe, "parked") + loadBias(w.pid(), exe);
            CompactionTest.awaitPausedAt(w, entry + 4, "parked in the original entry before hpvm attaches");
            Attached a = attach(w.pid());
            assertEquals(0, a.code(), a.err());
            assertTrue(a.err().contains("(1 moved out of an entry's first instructions)"), a.err());
            CompactionTest.Text t = CompactionTest.text(sessions(), w, "parked", w.pid());
            assertTrue(t.sites().redirected() && t.sites().patchAt() == entry, "parked's entry is redirected\n" + w);
            long trampoline = t.fn().trampoline();
            CompactionTest.awaitPausedAt(w, trampoline + 4, "moved to the trampoline's copy, pause() restarted there");

            int mark = w.mark();
            LibC.INSTANCE.kill(w.pid(), 10); // SIGUSR1: the parked call returns, in the trampoline
            w.awaitLine(mark, "parked returned 1"::equals, Duration.ofSeconds(20));
            CompactionTest.awaitPausedAt(w, trampoline + 4, "the next call goes through the stub to the trampoline");
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--pid", Integer.toString(w.pid()), "parked", v2.toString()));
            LibC.INSTANCE.kill(w.pid(), 10);
            w.awaitLine(mark + 1, "parked returned 1"::equals, Duration.ofSeconds(20));
            Thread.sleep(200);
            LibC.INSTANCE.kill(w.pid(), 10);
            w.awaitLine(mark + 2, "parked returned 2"::equals, Duration.ofSeconds(20));
        }
    }

    /**
     * {@code hpvm attach} run by another user against this test's (root's) program: refused before anything is done
     * to it, naming the cause and the fix; the program runs on untouched.
     */
    @Test
    void refusedWithTheCauseAndTheFixWhenAnotherUserAttaches() throws Exception {
        OtherUser.require();
        Path exe = Gcc.executable(dir, "loop", LOOP_UNTIL_FILE, "-O2");
        try (TestWorker w = TestWorker.startNative(exe, dir.resolve("stop").toString())) {
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "the program runs");
            // The other user cannot read this JVM's classpath (under root's home): it gets a readable copy.
            Path cp = Files.createDirectories(dir.resolve("cp"));
            StringBuilder classpath = new StringBuilder();
            int k = 0;
            for (String e : System.getProperty("java.class.path").split(":")) {
                Path to = cp.resolve(k++ + "-" + Path.of(e).getFileName());
                copyTree(Path.of(e), to);
                classpath.append(classpath.length() == 0 ? "" : ":").append(to);
            }
            openToAll(dir);
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            OtherUser.Result r = OtherUser.run(List.of("setpriv", "--reuid=" + OtherUser.uid(), "--regid="
                + OtherUser.uid(), "--clear-groups", "env", "HPVM_SESSION_ROOT=" + dir.resolve("other-sessions"),
                "HOME=" + dir, java, "-cp", classpath.toString(), "io.hpvm.runtime.cli.Main", "attach",
                Integer.toString(w.pid())));
            assertEquals(7, r.code(), r.out());
            assertTrue(r.out().contains("hpvm: error: cannot attach to process " + w.pid() + ": process " + w.pid()
                + " runs as uid 0 and you are uid " + OtherUser.uid() + ": only its own user or root (CAP_SYS_PTRACE) "
                + "may trace it; run hpvm attach as that user or as root"), r.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "the program runs on untouched");
            assertEquals("0", ProcFs.status(w.pid(), "TracerPid"), "nobody traces it");
        }
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (var files = Files.walk(from)) {
            for (Path f : files.toList()) {
                Path t = to.resolve(from.relativize(f).toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(t);
                } else {
                    Files.createDirectories(t.getParent());
                    Files.copy(f, t);
                }
            }
        }
    }

    /** Makes {@code dir}, everything in it and every directory above it readable and searchable by all. */
    private static void openToAll(Path dir) throws IOException {
        try (var files = Files.walk(dir)) {
            for (Path f : files.toList()) {
                Files.setPosixFilePermissions(f, java.nio.file.attribute.PosixFilePermissions.fromString(
                    Files.isDirectory(f) ? "rwxr-xr-x" : "rw-r--r--"));
            }
        }
        for (Path p = dir.getParent(); p != null; p = p.getParent()) {
            var perms = Files.getPosixFilePermissions(p);
            // Only where it is missing: setting a mode this way would clear /tmp's sticky bit.
            if (perms.add(java.nio.file.attribute.PosixFilePermission.OTHERS_EXECUTE)) {
                Files.setPosixFilePermissions(p, perms);
            }
        }
    }

    /** The address of {@code name} in {@code exe}'s symbol table (nm). */
    static long symbol(Path exe, String name) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("nm", exe.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor();
        for (String line : out.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length == 3 && f[2].equals(name)) {
                return Long.parseUnsignedLong(f[0], 16);
            }
        }
        throw new AssertionError(name + " not in nm " + exe + ":\n" + out);
    }

    /** Where {@code exe} is loaded in process {@code pid}: the start of its first mapping (gcc's PIE: offset 0). */
    static long loadBias(int pid, Path exe) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/maps"))) {
            if (line.endsWith(exe.toString()) && line.split("\\s+")[2].equals("00000000")) {
                return Long.parseUnsignedLong(line.substring(0, line.indexOf('-')), 16);
            }
        }
        throw new AssertionError(exe + " is not mapped in " + pid);
    }
}
