package io.hpvm.runtime;

import io.hpvm.runtime.linux.LibC;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A session is usable by every command from the moment {@code hpvm run} announces it: its registry is written
 * before the ready line, so a supervisor killed right after that line (kill -9: nothing of it runs) leaves a worker
 * that {@code ls}, {@code swap} and {@code rollback} still patch through the shared files. And one session that
 * cannot be read does not hide the others from {@code ls}.
 */
class SupervisorKilledTest {

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    /**
     * kill -9 of {@code hpvm run}, and the wait until it is reaped: its main thread shows as a zombie while other
     * threads still hold its socket open (a request reaching a dying supervisor is answered "what it did is
     * unknown", which is right, but not what these tests are about).
     */
    static void killSupervisor(TestWorker w) {
        LibC.INSTANCE.kill(w.supervisorPid(), LibC.SIGKILL);
        while (io.hpvm.runtime.linux.ProcFs.state(w.supervisorPid()) != '?') {
            Thread.onSpinWait();
        }
    }

    @Test
    void aSupervisorKilledRightAfterReadyLeavesAUsableSession() {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.startOrphanable(sessions(), exe)) {
            killSupervisor(w); // at once, after the ready line
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "the worker runs on without its supervisor");
            Hpvm.Result ls = SwapTest.ok(Hpvm.cmd(sessions(), "ls"));
            assertTrue(ls.out().contains("worker " + w.pid()) && ls.out().contains("compute"), ls.toString());
            Hpvm.Result slow = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--timings", "compute", patch.toString()));
            assertTrue(slow.out().contains("(in this process)") && slow.err().contains("no supervisor answers on "
                + sessions().resolve(w.pid() + "/control")) && slow.err().contains("(the slow path)"), slow.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped without a supervisor");
            Hpvm.Result patched = SwapTest.ok(Hpvm.cmd(sessions(), "ls", "--patched"));
            assertTrue(patched.out().matches("(?s).*\\ncompute\\s+v1/1 .*"), patched.toString());
            SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back without a supervisor");
        }
    }

    /** While the supervisor lives, commands are run by it (its warm JVM); then, killed, in the command's own. */
    @Test
    void commandsGoThroughTheSupervisorWhileItLives() {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.startOrphanable(sessions(), exe)) {
            Hpvm.Result served = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--timings", "compute", patch.toString()));
            assertTrue(served.out().contains("(in the supervisor's JVM)") && served.err().isEmpty(), served.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped by the supervisor");
            killSupervisor(w);
            Hpvm.Result slow = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            assertTrue(slow.err().contains("no supervisor answers on " + sessions().resolve(w.pid() + "/control"))
                && slow.err().contains("(the slow path)") && slow.out().startsWith("rolled back compute: v1 -> v0"),
                slow.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back in the command's own process");
        }
    }

    /** The native fast path: served while the supervisor lives; then the same slow path, saying so the same way. */
    @Test
    void theNativeClientTakesTheSamePaths() {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.startOrphanable(sessions(), exe)) {
            Hpvm.Result served = SwapTest.ok(Hpvm.nativeOnly(sessions(), "swap", "--timings", "compute",
                patch.toString()));
            assertTrue(served.out().contains("(in the supervisor's JVM)") && served.err().isEmpty(), served.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped by the supervisor");
            killSupervisor(w);
            Hpvm.Result n = Hpvm.nativeOnly(sessions(), "ls");
            assertEquals(253, n.code(), "no supervisor: the slow path, in Java: " + n);
            Hpvm.Result java = SwapTest.ok(Hpvm.cmd(sessions(), "ls"));
            assertEquals(java.err(), n.err(), "the same line says so");
            Hpvm.Result slow = SwapTest.ok(Hpvm.viaNative(sessions(), "rollback", "compute"));
            assertTrue(slow.err().contains("(the slow path)") && slow.out().startsWith("rolled back compute: v1 -> v0"),
                slow.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back in the command's own process");
        }
    }

    @Test
    void aBrokenSessionDoesNotHideTheOthers() throws Exception {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        try (TestWorker good = TestWorker.start(sessions(), List.of(), exe);
             TestWorker broken = TestWorker.startOrphanable(sessions(), exe)) {
            killSupervisor(broken);
            SwapTest.assertBehaviour(broken, broken.mark(), (i, z) -> i * 2, "runs on without its supervisor");
            Files.delete(sessions().resolve(Integer.toString(broken.pid())).resolve("registry"));
            Hpvm.Result ls = Hpvm.cmd(sessions(), "ls");
            assertEquals(0, ls.code(), ls.toString());
            assertTrue(ls.out().matches("(?s).*\\n" + good.pid() + "\\s+live\\s+\\d+\\s+0\\s+.*loop.*"), ls.toString());
            assertTrue(ls.out().matches("(?s).*\\n" + broken.pid() + "\\s+broken\\s+.*registry.*"), ls.toString());
            SwapTest.ok(Hpvm.cmd(sessions(), "ls", "--pid", Integer.toString(good.pid())));
        }
    }
}
