package io.hpvm.runtime;

import io.hpvm.testing.ElfEdit;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Objects that lie about themselves never reach a worker: a function symbol past (or far outside) its section, a
 * size larger than the section, a relocation patching bytes outside its section, a branch whose addend leaves the
 * code placed, a truncated file, things that are not files at all. Each is refused with exit 4 and one line naming
 * the file and the field, and the worker runs its old code with its arena untouched. Huge functions are linked or
 * refused from their section sizes, without analysing megabytes first.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HostileObjectsTest {

    @TempDir
    static Path dir;
    TestWorker worker;
    /** The patch every mutation starts from: compute calls a helper in its own section. */
    Path patch;

    static final String PATCH = """
        __attribute__((noinline)) static long helper(long x) { return x + 1; }
        long compute(long x) { return helper(x) * 3 - 3; }
        """;

    Path sessions() {
        return dir.resolve("sessions");
    }

    @BeforeAll
    void startWorker() {
        worker = TestWorker.start(sessions(), List.of(), Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2"));
        patch = Gcc.object(dir, "patch", PATCH, "-O2", "-ffunction-sections");
    }

    @AfterAll
    void stopWorker() {
        worker.close();
    }

    /** A swap of {@code object} fails with {@code code}, one line naming every fragment, and changes nothing. */
    void refused(int code, Path object, String... fragments) {
        String arenaBefore = arena();
        Hpvm.Result r = Hpvm.cmd(sessions(), "swap", "compute", object.toString());
        assertEquals(code, r.code(), r.toString());
        assertTrue(r.err().startsWith("hpvm: error: ") && r.err().strip().lines().count() == 1, "one line: " + r);
        assertFalse(io.hpvm.testing.Fuzz.JAVA_TEXT.matcher(r.err()).find(), "no Java text: " + r);
        for (String f : fragments) {
            assertTrue(r.err().contains(f), "the refusal names '" + f + "': " + r);
        }
        SwapTest.assertBehaviour(worker, worker.mark(), (i, z) -> i * 2, "the worker still runs its old code");
        assertEquals(arenaBefore, arena(), "the refused object took no arena space");
    }

    String arena() {
        String ls = SwapTest.ok(Hpvm.cmd(sessions(), "ls")).out();
        return ls.substring(ls.indexOf("arena"), ls.indexOf("bytes used"));
    }

    Path edited(String name, java.util.function.UnaryOperator<ElfEdit> edit) {
        return edit.apply(new ElfEdit(patch)).write(dir.resolve(name + ".o"));
    }

    @Test
    void aFunctionSymbolPastItsSectionIsRefused() {
        refused(4, edited("past", e -> e.symbolValue("compute", 0x10000)), "past.o", "'compute'", "STT_FUNC",
            ".text.compute+0x10000", "lies outside its section");
        refused(4, edited("far", e -> e.symbolValue("compute", 0x7fff_0000_0000L)), "far.o", "'compute'",
            "lies outside its section");
    }

    @Test
    void aSizeLargerThanTheSectionIsRefused() {
        refused(4, edited("size", e -> e.symbolSize("compute", 1 << 20)), "size.o", "'compute'", "1048576 bytes",
            "lies outside its section");
    }

    @Test
    void aRelocationOutsideItsSectionIsRefused() {
        refused(4, edited("reloc", e -> e.relocationOffset(".text.compute", 0, 0x100000)), "reloc.o",
            ".text.compute+0x100000", "outside .text.compute");
    }

    @Test
    void aBranchThatLeavesTheCodePlacedIsRefused() {
        // The call to helper (gcc: R_X86_64_PC32 against the local helper, addend -4); +1 MiB sends it past helper.
        refused(4, edited("addend", e -> e.relocationAddend(".text.compute", 0, 0x100000 - 4)), "addend.o",
            "relocation R_X86_64_PC32 at .text.compute+0x1", "reaches .text.helper+0x100000", "outside .text.helper");
    }

    @Test
    void aTruncatedFileIsRefusedSayingSo() {
        refused(4, edited("cut", e -> e.truncate(200)), "cut.o", "lies past the end of the file (200 bytes)",
            "truncated");
        refused(4, edited("short", e -> e.truncate(40)), "short.o", "shorter than the 64-byte ELF64 header");
    }

    @Test
    void whatIsNotAFileIsNamedForWhatItIs() throws IOException, InterruptedException {
        refused(4, Files.createDirectories(dir.resolve("adir.o")), "adir.o", "is a directory");
        Path fifo = dir.resolve("fifo.o");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        refused(4, fifo, "fifo.o", "is a FIFO (named pipe), not a regular file");
        refused(4, Path.of("/dev/zero"), "/dev/zero", "is a character device, not a regular file");
        refused(4, dir.resolve("missing.o"), "missing.o", "no such file");
    }

    @Test
    void aSymbolOfTheRightNameThatIsNoFunctionSaysWhy() {
        refused(5, Gcc.object(dir, "data", "long compute = 5;\n", "-O2"), "data.o", "'compute'",
            "is defined in section .data, which is not executable code");
        refused(5, Gcc.object(dir, "caller", "long compute(long); long other(long x) { return compute(x); }\n",
            "-O2"), "caller.o", "only refers to 'compute'", "functions it defines: other");
    }

    /** 2 MiB of code: linked, analysed and swapped (the analyses are linear); the worker runs it. */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aTwoMegabyteFunctionIsSwapped() {
        int n = 1 << 19; // 4-byte instructions: 2 MiB
        Path big = Gcc.object(dir, "big.s", """
                    .text
                    .globl compute
                    .type compute, @function
            compute:
                    lea (%rdi,%rdi,2), %rax
                    .rept N
                    add $1, %rax
                    .endr
                    sub $N, %rax
                    ret
                    .size compute, .-compute
            """.replace("N", Integer.toString(n)));
        Hpvm.Result r = SwapTest.ok(Hpvm.cmd(sessions(), "swap", "--timings", "compute", big.toString()));
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\((\\d+) bytes from").matcher(r.out());
        assertTrue(m.find() && Long.parseLong(m.group(1)) >= (2L << 20), "2 MiB placed: " + r.out());
        SwapTest.assertBehaviour(worker, worker.mark(), (i, z) -> i * 3, "the 2 MiB version runs");
        SwapTest.ok(Hpvm.cmd(sessions(), "rollback", "compute"));
        SwapTest.assertBehaviour(worker, worker.mark(), (i, z) -> i * 2, "rolled back");
    }

    /** 40 MiB of code in a 32 MiB arena: refused from the section size, before anything reads the code. */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void aFunctionLargerThanTheArenaIsRefusedAtOnce() {
        Path huge = Gcc.object(dir, "huge.s", """
                    .text
                    .globl compute
                    .type compute, @function
            compute:
                    .skip 41943040, 0x90
                    lea (%rdi,%rdi,1), %rax
                    ret
                    .size compute, .-compute
            """);
        refused(7, huge, "code arena", "is full", "huge.o: 'compute' does not fit", ".text alone is 41943045 bytes",
            "--arena-size");
    }
}
