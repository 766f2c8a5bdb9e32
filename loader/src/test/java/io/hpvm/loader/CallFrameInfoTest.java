package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Call frame information against binutils' reading of the same files, and the rules against gcc's prologues. */
class CallFrameInfoTest {

    @TempDir
    Path dir;

    static final String PROGRAM = """
        #include <stdio.h>
        __attribute__((noinline)) int f(int x) { return x * 3; }
        __attribute__((noinline)) long g(long a, long b) {
            long v[8];
            for (int i = 0; i < 8; i++) v[i] = a * i + b;
            printf("%ld\\n", v[a & 7]);
            return v[b & 7];
        }
        int main(int argc, char **argv) { return f(argc) + (int) g(argc, 3); }
        """;

    /** readelf's FDE ranges: {start, end}. */
    static List<long[]> readelfFdes(Path file) {
        List<long[]> out = new ArrayList<>();
        String text;
        try { // readelf exits 1 on libc.so.6 for a warning unrelated to .eh_frame: its output is what counts
            Process p = new ProcessBuilder("readelf", "--debug-dump=frames", file.toString())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            text = new String(p.getInputStream().readAllBytes());
            p.waitFor();
        } catch (java.io.IOException | InterruptedException e) {
            throw new AssertionError("readelf: " + e, e);
        }
        Matcher m = Pattern.compile("FDE cie=\\S+ pc=([0-9a-f]+)\\.\\.([0-9a-f]+)").matcher(text);
        while (m.find()) {
            out.add(new long[] {Long.parseUnsignedLong(m.group(1), 16), Long.parseUnsignedLong(m.group(2), 16)});
        }
        out.sort((x, y) -> Long.compare(x[0], y[0]));
        return out;
    }

    @Test
    void indexesTheSameFdesAsReadelf() throws LoadException {
        List<Path> files = new ArrayList<>();
        files.add(Gcc.executable(dir, "o2", PROGRAM, "-O2"));
        files.add(Gcc.executable(dir, "o0", PROGRAM, "-O0", "-no-pie", "-fno-pie"));
        Path libc = Path.of("/lib/x86_64-linux-gnu/libc.so.6");
        if (Files.exists(libc)) {
            files.add(libc);
        }
        for (Path file : files) {
            CallFrameInfo cfi = CallFrameInfo.ofFile(file);
            List<long[]> expected = readelfFdes(file);
            assertTrue(expected.size() > 3, file + ": " + expected.size());
            long[][] ours = cfi.ranges();
            assertEquals(expected.size(), ours.length, file.toString());
            for (int i = 0; i < ours.length; i++) {
                assertArrayEquals(expected.get(i), ours[i], file + " FDE " + i);
            }
        }
    }

    @Test
    void followsAFramePointerPrologue() throws LoadException, UnwindException {
        Path exe = Gcc.executable(dir, "o0", PROGRAM, "-O0", "-no-pie", "-fno-pie");
        long f = ElfImageTest.nmFunctions(exe).get("f");
        // f at -O0: push %rbp (1 byte); mov %rsp,%rbp (3 bytes); ...
        assertEquals("55 48 89 e5", Gcc.tool("objdump", "-d", "--start-address=" + f, "--stop-address=" + (f + 4),
            exe.toString()).lines().filter(l -> l.contains(":\t")).map(l -> l.split("\t")[1].trim())
            .reduce((a, b) -> a + " " + b).orElse(""));
        CallFrameInfo cfi = CallFrameInfo.ofFile(exe);
        Map<Long, Long> memory = new HashMap<>();
        DwarfExpression.Memory mem = a -> {
            Long v = memory.get(a);
            if (v == null) {
                throw new UnwindException("nothing at " + Long.toHexString(a));
            }
            return v;
        };
        long[] regs = new long[CallFrameInfo.REGISTERS];

        // At the entry: the return address is at rsp, the caller's rsp is just above it.
        regs[CallFrameInfo.RSP] = 0x7000;
        regs[6] = 0x7777; // the caller's rbp, not yet saved
        memory.put(0x7000L, 0x401234L);
        CallFrameInfo.Step s = cfi.step(f, regs, mem);
        assertEquals(0x7008, s.cfa());
        assertEquals(0x401234, s.caller()[CallFrameInfo.RA]);
        assertEquals(0x7008, s.caller()[CallFrameInfo.RSP]);
        assertEquals(0x7777, s.caller()[6]);
        assertFalse(s.signalFrame());

        // After push %rbp: CFA = rsp + 16, the caller's rbp at CFA - 16.
        regs[CallFrameInfo.RSP] = 0x6ff8;
        regs[6] = 0x1111; // clobbered meanwhile: the saved value counts
        memory.put(0x6ff8L, 0x7777L);
        s = cfi.step(f + 1, regs, mem);
        assertEquals(0x7008, s.cfa());
        assertEquals(0x7777, s.caller()[6]);
        assertEquals(0x401234, s.caller()[CallFrameInfo.RA]);

        // After mov %rsp,%rbp: CFA = rbp + 16, whatever rsp is.
        regs[6] = 0x6ff8;
        regs[CallFrameInfo.RSP] = 0x6f00;
        s = cfi.step(f + 8, regs, mem);
        assertEquals(0x7008, s.cfa());
        assertEquals(0x401234, s.caller()[CallFrameInfo.RA]);
        assertEquals(0x7777, s.caller()[6]);

        UnwindException none = assertThrows(UnwindException.class, () -> cfi.step(0x10, regs, mem));
        assertTrue(none.getMessage().contains("no call frame information covers 0x10"), none.getMessage());
    }

    @Test
    void theOutermostFrameEndsTheWalk() throws LoadException, UnwindException {
        Path exe = Gcc.executable(dir, "o2", PROGRAM, "-O2");
        long start = ElfImageTest.nmFunctions(exe).get("_start");
        CallFrameInfo cfi = CallFrameInfo.ofFile(exe);
        long[] regs = new long[CallFrameInfo.REGISTERS];
        regs[CallFrameInfo.RSP] = 0x7000;
        // glibc's _start marks the return address column undefined (".cfi_undefined rip") after its first instruction
        CallFrameInfo.Step s = cfi.step(start + 4, regs, a -> 0);
        assertNull(s.caller(), "caller of _start");
    }

    @Test
    void readsATableFromMemoryAtItsRunTimeAddress() throws LoadException, UnwindException {
        Path obj = Gcc.executable(dir, "o2", PROGRAM, "-O2");
        ElfReader r = ElfReader.open(obj, Elf.ET_DYN, Elf.ET_EXEC);
        Section eh = r.section(".eh_frame");
        long bias = 0x5555_0000_0000L;
        byte[] bytes = java.util.Arrays.copyOf(eh.data(), eh.data().length + 64); // followed by whatever
        CallFrameInfo fromMemory = CallFrameInfo.parse(bytes, eh.address() + bias);
        CallFrameInfo fromFile = CallFrameInfo.ofFile(obj);
        assertEquals(fromFile.size(), fromMemory.size());
        long f = ElfImageTest.nmFunctions(obj).get("f");
        assertTrue(fromMemory.covers(f + bias));
        assertFalse(fromMemory.covers(f));
        long[] regs = new long[CallFrameInfo.REGISTERS];
        regs[CallFrameInfo.RSP] = 0x9000;
        assertEquals(0x1234, fromMemory.step(f + bias, regs, a -> a == 0x9000 ? 0x1234 : 0).caller()[16]);
    }

    /**
     * An early return's epilogue bracketed by remember_state/restore_state, as gcc emits it for shrink-wrapped
     * functions: after the restore, the CFA rule of the body holds again (a walk of a Lua interpreter went wrong when
     * it did not).
     */
    @Test
    void restoreStateBringsBackTheCfaRule() throws LoadException, UnwindException {
        Gcc.write(dir, "early.S", """
                .text
                .globl f
                .type f, @function
            f:
                .cfi_startproc
                push %rbx
                .cfi_def_cfa_offset 16
                .cfi_offset rbx, -16
                test %rdi, %rdi
                jne 1f
                .cfi_remember_state
                pop %rbx
                .cfi_def_cfa_offset 8
                ret
            1:
                .cfi_restore_state
                mov %rdi, %rax
                pop %rbx
                .cfi_def_cfa_offset 8
                ret
                .cfi_endproc
                .size f, .-f
                .section .note.GNU-stack,"",@progbits
            """);
        Gcc.write(dir, "main.c", "long f(long);\nint main(int argc, char **argv) { return (int) f(argc); }\n");
        Path exe = Gcc.link(dir, "early", "-O2", "main.c", "early.S");
        long f = ElfImageTest.nmFunctions(exe).get("f");
        CallFrameInfo cfi = CallFrameInfo.ofFile(exe);
        long[] regs = new long[CallFrameInfo.REGISTERS];
        regs[CallFrameInfo.RSP] = 0x7000; // at "1:", f+8 (push 1, test 3, jne 2, pop 1, ret 1): rbx still pushed
        Map<Long, Long> memory = Map.of(0x7000L, 0xbbbL, 0x7008L, 0x401234L);
        CallFrameInfo.Step s = cfi.step(f + 8, regs, a -> memory.getOrDefault(a, 0L));
        assertEquals(0x7010, s.cfa());
        assertEquals(0x401234, s.caller()[CallFrameInfo.RA]);
        assertEquals(0xbbb, s.caller()[3]);
        // inside the early epilogue, after its pop: CFA = rsp + 8
        regs[CallFrameInfo.RSP] = 0x7008;
        assertEquals(0x401234, cfi.step(f + 7, regs, a -> memory.getOrDefault(a, 0L)).caller()[CallFrameInfo.RA]);
    }
}
