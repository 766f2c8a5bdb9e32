package io.hpvm.asm;

import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.Section;
import io.hpvm.loader.Symbol;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The call-site scanner against {@code objdump -d} of the same binary. */
class CallSiteScannerTest {

    @TempDir
    Path dir;

    static final String C_PROGRAM = """
        #include <stdio.h>
        #include <stdlib.h>
        __attribute__((noinline)) long leaf(long x) { return x * 7 + 1; }
        __attribute__((noinline)) long mid(long x) { return leaf(x) + leaf(x + 1); }
        __attribute__((noinline)) long tail(long x) { if (x > 3) return leaf(x); return mid(x) + 1; }
        __attribute__((noinline)) long rec(long n) { return n < 2 ? n : rec(n - 1) + rec(n - 2); }
        int main(int argc, char **argv) {
            long n = argc > 1 ? atol(argv[1]) : 10;
            printf("%ld %ld %ld\\n", mid(n), tail(n), rec(n));
            return 0;
        }
        """;

    /**
     * Conditional and unconditional tail jumps to a function in another input section: gas cannot relax them, so
     * they stay jcc/jmp rel32.
     */
    static final String ASM_JCC = """
                .text
                .globl target_fn
                .type target_fn, @function
        target_fn:
                mov %rdi, %rax
                ret
                .size target_fn, .-target_fn
                .section .text.caller,"ax",@progbits
                .globl jcc_caller
                .type jcc_caller, @function
        jcc_caller:
                test %rdi, %rdi
                jne target_fn
                jmp target_fn
                .size jcc_caller, .-jcc_caller
        """;

    record Site(long address, long target, String kind) {
    }

    /** Sites per objdump: rel32 call/jmp/jcc (5- or 6-byte encodings, after prefixes) to a function entry. */
    static Set<Site> objdumpSites(Path exe, Set<Long> entries) {
        Set<Site> out = new TreeSet<>((a, b) -> Long.compare(a.address, b.address));
        Pattern line = Pattern.compile("^\\s*([0-9a-f]+):\\s+((?:[0-9a-f]{2} )+)\\s*(bnd )?(call|jmp|j[a-z]+)\\s+"
            + "([0-9a-f]+) <");
        for (String l : Gcc.tool("objdump", "-d", "-w", exe.toString())
            .split("\n")) {
            Matcher m = line.matcher(l);
            if (!m.find()) {
                continue;
            }
            String[] bytes = m.group(2).trim().split(" ");
            int i = 0;
            while (bytes[i].equals("f2") || bytes[i].equals("2e") || bytes[i].equals("3e")) {
                i++;
            }
            boolean rel32 = bytes[i].equals("e8") || bytes[i].equals("e9")
                || bytes[i].equals("0f") && bytes[i + 1].startsWith("8");
            long target = Long.parseLong(m.group(5), 16);
            if (rel32 && entries.contains(target)) {
                String kind = bytes[i].equals("e8") ? "CALL" : bytes[i].equals("e9") ? "JMP" : "JCC";
                out.add(new Site(Long.parseLong(m.group(1), 16), target, kind));
            }
        }
        return out;
    }

    static Set<Site> scannerSites(Path exe) throws LoadException {
        ElfImage img = ElfImage.read(exe);
        Set<Long> entries = new HashSet<>();
        List<long[]> ranges = new ArrayList<>();
        for (Symbol s : img.symbols()) {
            if (s.isFunction() && s.isDefined() && s.size() > 0) {
                entries.add(s.value());
                ranges.add(new long[] {s.value(), s.value() + s.size()});
            }
        }
        Set<Site> out = new TreeSet<>((a, b) -> Long.compare(a.address, b.address));
        Section text = img.section(".text");
        try (Decoder d = new Decoder()) {
            CallSiteScanner.Result r = CallSiteScanner.scan(d, text.data(), text.address(), ranges,
                entries::contains);
            assertTrue(r.undecodable().isEmpty(), "every function decodes: " + r.undecodable());
            for (CallSite c : r.sites()) {
                out.add(new Site(c.address(), c.target(), c.kind().name()));
            }
        }
        return out;
    }

    static Set<Long> entries(Path exe) throws LoadException {
        Set<Long> entries = new HashSet<>();
        for (Symbol s : ElfImage.read(exe).symbols()) {
            if (s.isFunction() && s.isDefined() && s.size() > 0) {
                entries.add(s.value());
            }
        }
        return entries;
    }

    @Test
    void matchesObjdumpAcrossOptimisationLevels() throws LoadException {
        for (String opt : new String[] {"-O0", "-O2", "-Os"}) {
            Path exe = Gcc.executable(dir, "prog" + opt, C_PROGRAM, opt);
            Set<Site> expected = objdumpSites(exe, entries(exe));
            Set<Site> actual = scannerSites(exe);
            assertEquals(expected.toString(), actual.toString(), "call sites of " + opt);
            assertTrue(actual.size() >= 6, "the program has calls to find: " + actual);
        }
    }

    /**
     * The scan split between threads finds exactly what one scan finds, in the same order, with the same branch
     * targets and bytes scanned: over libc's exported functions (thousands of them, the split lands mid-list).
     */
    @Test
    void aScanSplitBetweenThreadsFindsWhatOneScanFinds() throws LoadException {
        ElfImage libc = ElfImage.read(Path.of("/lib/x86_64-linux-gnu/libc.so.6"));
        Section text = libc.section(".text");
        List<long[]> ranges = new ArrayList<>();
        Set<Long> entries = new HashSet<>();
        for (Symbol s : libc.dynamicSymbols()) {
            if (s.isFunction() && s.isDefined() && s.size() > 0 && s.value() >= text.address()
                && s.value() + s.size() <= text.address() + text.size()) {
                ranges.add(new long[] {s.value(), s.value() + s.size()});
                entries.add(s.value());
            }
        }
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        assertTrue(ranges.size() > 1000, "libc has thousands of functions: " + ranges.size());
        try (Decoder a = new Decoder(); Decoder b = new Decoder(); Decoder c = new Decoder()) {
            List<Long> oneTargets = new ArrayList<>();
            CallSiteScanner.Result one = CallSiteScanner.scan(a, text.data(), text.address(), ranges,
                entries::contains, oneTargets::add);
            for (List<Decoder> decoders : List.of(List.of(a, b), List.of(a, b, c))) {
                List<Long> splitTargets = new ArrayList<>();
                CallSiteScanner.Result split = CallSiteScanner.scan(decoders, text.data(), text.address(), ranges,
                    entries::contains, splitTargets::add);
                assertEquals(one.sites(), split.sites(), decoders.size() + " threads");
                assertEquals(one.undecodable(), split.undecodable());
                assertEquals(one.bytesScanned(), split.bytesScanned());
                assertEquals(oneTargets, splitTargets, "every branch target, in the same order");
            }
            assertTrue(one.sites().size() > 1000, "libc calls its own exported functions: " + one.sites().size());
        }
    }

    @Test
    void findsConditionalAndUnconditionalTailJumps() throws LoadException {
        Gcc.write(dir, "jcc.s", ASM_JCC);
        Path exe = Gcc.executable(dir, "jccprog", "long jcc_caller(long);\nint main(int c, char **v) { return (int) "
            + "jcc_caller(c); }\n", dir.resolve("jcc.s").toString());
        Set<Site> actual = scannerSites(exe);
        Set<Site> expected = objdumpSites(exe, entries(exe));
        assertEquals(expected.toString(), actual.toString());
        assertTrue(actual.stream().anyMatch(s -> s.kind().equals("JCC")), actual.toString());
        assertTrue(actual.stream().anyMatch(s -> s.kind().equals("JMP")), actual.toString());
    }

    @Test
    void dispatcherStubDecodesAsAnIndirectJumpThroughTheSlot() throws LoadException {
        long stub = 0x5555_0000_1000L;
        long slot = 0x5555_0000_0040L;
        byte[] code = Snippets.stub(stub, slot);
        List<String> text = new ArrayList<>();
        try (Decoder d = new Decoder()) {
            d.decode(code, stub, insn -> text.add(insn.mnemonic() + " " + insn.operands()) || true);
        }
        assertEquals("jmp qword ptr [rip - 0xfc6]", text.get(0), "jmp [rip+disp] with disp = slot - (stub + 6)");
        assertEquals(slot - (stub + 6), -0xfc6);
    }
}
