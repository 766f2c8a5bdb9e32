package io.hpvm.runtime;

import io.hpvm.testing.Fuzz;
import io.hpvm.testing.Gcc;
import io.hpvm.testing.ObjectMutator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Broken variants of real patches ({@link ObjectMutator}) swapped into one running worker, end to end through the
 * command line: every refusal is one line without Java text and a known exit code, and leaves the worker exactly as
 * it was (alive, printing its old results, the function at version 0 at the same address, the arena untouched). A
 * mutant that still links (a flipped bit in an instruction is still code) is swapped and rolled back; if such a
 * patch crashes or hangs the worker, that is the patch's doing, as with any buggy patch, and the worker is started
 * again.
 */
class MutatedObjectsAgainstWorkerTest {

    private static final Pattern COMPUTE = Pattern.compile("\\ncompute\\s+(v\\d+)\\S*\\s+(0x[0-9a-f]+)");

    @TempDir
    Path dir;
    TestWorker worker;

    Path sessions() {
        return dir.resolve("sessions");
    }

    @Test
    void brokenPatchesNeverHurtTheWorker() throws Exception {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        String source = """
            #include <stdio.h>
            static const long factors[] = {3, 3, 3, 3};
            __attribute__((noinline)) static long scale(long x, long i) { return x * factors[i & 3]; }
            long compute(long x) {
                if (x < 0) printf("negative %ld\\n", x);
                return scale(x, x);
            }
            """;
        List<byte[]> originals = new ArrayList<>();
        for (String flags : List.of("-O2", "-O0 -g -fPIC", "-O2 -ffunction-sections -fdata-sections")) {
            originals.add(Files.readAllBytes(Gcc.object(dir, "patch" + originals.size(), source, flags.split(" "))));
        }
        worker = TestWorker.start(sessions(), List.of(), exe);
        int[] deaths = {0};
        try {
            Map<String, Integer> outcomes = Fuzz.run("mutated patches against a worker", 120, 120, seed -> {
                byte[] original = originals.get((int) Math.floorMod(seed, (long) originals.size()));
                ObjectMutator.Mutant m = new ObjectMutator(original).mutate(seed);
                Path object = Files.write(dir.resolve("mutant.o"), m.bytes());
                return attempt(object, m.description(), deaths, exe);
            });
            System.out.println("workers killed by mutants that linked (their code was changed): " + deaths[0]);
            int refused = outcomes.entrySet().stream().filter(e -> e.getKey().startsWith("refused"))
                .mapToInt(Map.Entry::getValue).sum();
            assertTrue(refused >= 40, "most mutants are refused: " + outcomes);
        } finally {
            worker.close();
        }
    }

    private String attempt(Path object, String what, int[] deaths, Path exe) {
        String before = state();
        Hpvm.Result r = Hpvm.cmd(sessions(), "swap", "compute", object.toString());
        if (r.code() != 0) {
            assertTrue(List.of(4, 5, 6, 7).contains(r.code()), "a known exit code for " + what + ": " + r);
            assertTrue(r.err().startsWith("hpvm: error: ") && r.err().strip().lines().count() == 1,
                "one line for " + what + ": " + r);
            assertFalse(Fuzz.JAVA_TEXT.matcher(r.err()).find(), "no Java text for " + what + ": " + r);
            assertTrue(worker.supervisor().isAlive(), "the worker lives after refusing " + what + "\n" + worker);
            SwapTest.assertBehaviour(worker, worker.mark(), (i, z) -> i * 2, "old code after refusing " + what);
            assertEquals(before, state(), "nothing changed in the session after refusing " + what);
            return "refused (exit " + r.code() + ")";
        }
        Hpvm.Result back = Hpvm.cmd(sessions(), "rollback", "compute");
        if (back.code() != 0 && died()) {
            deaths[0]++;
            System.out.println("a mutant that linked killed the worker: " + what + "\n" + worker);
            worker.close();
            worker = TestWorker.start(sessions(), List.of(), exe);
            return "linked; its changed code killed the worker";
        }
        assertEquals(0, back.code(), "rollback after " + what + ": " + back);
        int mark = worker.mark();
        try {
            worker.awaitLines(mark, 2, java.time.Duration.ofSeconds(5));
        } catch (AssertionError silent) {
            // A thread that entered the changed code before the rollback may never leave it (an endless loop is
            // still code): the worker lives but prints nothing more. That is the patch's doing, as with any bug.
            System.out.println("a mutant that linked hung the worker: " + what + "\n" + worker);
            worker.close();
            worker = TestWorker.start(sessions(), List.of(), exe);
            return "linked; its changed code hung the worker";
        }
        SwapTest.assertBehaviour(worker, mark, (i, z) -> i * 2, "old code after rolling back " + what);
        return "linked, swapped and rolled back";
    }

    /** True when the worker is gone (its supervisor then exits with 128+signal). */
    private boolean died() {
        try {
            return worker.supervisor().waitFor(5, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    /** The function's version and slot target, and the arena's use, as {@code hpvm ls} shows them. */
    private String state() {
        Hpvm.Result ls = SwapTest.ok(Hpvm.cmd(sessions(), "ls"));
        Matcher m = COMPUTE.matcher(ls.out());
        assertTrue(m.find(), ls.toString());
        String out = ls.out();
        return m.group(1) + " " + m.group(2) + " " + out.substring(out.indexOf("arena"), out.indexOf("bytes used"));
    }
}
