package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code hpvm rollback} undoes the last change: it returns to what ran before the current version was installed.
 * After swap (v1), rollback (v0), swap (v2), a rollback goes to v0, never back to the v1 the operator took out.
 */
class RollbackTest {

    @TempDir
    Path dir;

    Path sessions() {
        return dir.resolve("sessions");
    }

    @Test
    void rollbackUndoesTheLastChangeNotTheLastNumber() {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path three = Gcc.object(dir, "three", "long compute(long x) { return x * 3; }\n", "-O2");
        Path four = Gcc.object(dir, "four", "long compute(long x) { return x * 4; }\n", "-O2");
        try (TestWorker w = TestWorker.start(sessions(), List.of(), exe)) {
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "compute", three.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "v1");
            Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            assertTrue(r.out().startsWith("rolled back compute: v1 -> v0 (what ran before v1: the original code)"),
                r.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "v0 again");
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "compute", four.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 4, "v2");

            r = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            assertTrue(r.out().startsWith("rolled back compute: v2 -> v0 (what ran before v2: the original code)"),
                "back to what ran before v2, not to v1: " + r.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "v0, not the v1 already taken out");
            Hpvm.Result nothing = Hpvm.cmd(sessions(), "rollback", "compute");
            assertEquals(2, nothing.code(), nothing.toString());
            assertTrue(nothing.err().contains("no change to it is left to undo"), nothing.toString());

            // --to installs a version; a plain rollback then undoes that, and then what came before.
            r = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute", "--to", "1"));
            assertTrue(r.out().startsWith("rolled back compute: v0 -> v1 (--to 1: v1 from three.o"), r.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "--to 1");
            SwapTest.ok(Hpvm.cmd(sessions(), "swap", "compute", four.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 4, "v3");
            r = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            assertTrue(r.out().startsWith("rolled back compute: v3 -> v1 (what ran before v3: v1 from three.o)"),
                r.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "back to v1, which ran before v3");
            r = SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
            assertTrue(r.out().startsWith("rolled back compute: v1 -> v0"), r.out());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "and then to v0");
        }
    }
}
