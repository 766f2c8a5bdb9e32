package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One small assembly file per relocation kind, linked at a pinned base with pinned external addresses; the
 * expected fixup is computed beside each case from the edge kind's formula.
 */
class LinkerTest {

    static final long BASE = 0x4000_0000L;
    static final long NEAR = 0x4010_0000L;            // within +-2 GiB of BASE
    static final long FAR = 0x7f12_3456_7000L;        // a shared library, far away

    @TempDir
    Path dir;

    /** Assembles {@code body} as the function {@code f} and links it with ext = {@code ext}. */
    LinkedImage link(String name, String body, long ext, String expectRelocation, String... asFlags)
        throws LoadException {
        String src = "        .text\n        .globl f\n        .type f, @function\nf:\n" + body
            + "\n        .size f, .-f\n";
        Path o = Gcc.object(dir, name + ".s", src, asFlags);
        String readelf = Gcc.tool("readelf", "-rW", o.toString());
        assertTrue(readelf.contains(expectRelocation), "the assembler emitted " + expectRelocation + ":\n" + readelf);
        RelocatableObject obj = RelocatableObject.read(o);
        return Linker.link(obj, "f", (n, s) -> n.equals("ext") ? new SymbolResolver.Resolution(ext, "test") : null,
            BASE);
    }

    static ByteBuffer le(LinkedImage img) {
        return ByteBuffer.wrap(img.bytes()).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void pointer64() throws LoadException {
        LinkedImage img = link("abs64", "        ret\n        .quad ext+8", FAR, "R_X86_64_64");
        assertEquals(FAR + 8, le(img).getLong(1), "S + A");
        assertEquals(BASE, img.entryAddress());
    }

    @Test
    void pcRelative32() throws LoadException {
        // 48 8d 05 <disp32>: lea ext(%rip), %rax; fixup at 3, A = -4
        LinkedImage img = link("pc32", "        lea ext(%rip), %rax\n        ret", NEAR, "R_X86_64_PC32");
        assertEquals((int) (NEAR - 4 - (BASE + 3)), le(img).getInt(3), "S + A - P");
    }

    /** A load from a far library variable cannot be rewritten in place: a link error naming everything. */
    @Test
    void pcRelative32OutOfRangeIsALinkErrorNamingEverything() {
        LoadException e = assertThrows(LoadException.class,
            () -> link("pc32far", "        mov ext(%rip), %rax\n        ret", FAR, "R_X86_64_PC32"));
        assertEquals(LoadException.Kind.LINK, e.kind());
        for (String part : new String[] {"pc32far.o", "R_X86_64_PC32", ".text+0x3", "'ext'", "0x7f1234567000",
            "-fPIC"}) {
            assertTrue(e.getMessage().contains(part), part + " in: " + e.getMessage());
        }
    }

    /** Taking a far library object's address with lea becomes a load of that address from a GOT entry. */
    @Test
    void farLeaBecomesAGotLoad() throws LoadException {
        // 48 8d 05 <disp32>: lea ext(%rip), %rax  ->  48 8b 05 <disp32 to a GOT entry holding FAR>
        LinkedImage img = link("leafar", "        lea ext(%rip), %rax\n        ret", FAR, "R_X86_64_PC32");
        assertEquals((byte) 0x8b, img.bytes()[1], "mov, not lea");
        long slot = BASE + 7 + le(img).getInt(3);
        assertEquals(FAR, le(img).getLong((int) (slot - BASE)), "the GOT entry holds the far address");
        assertEquals(1, img.gotEntries());
    }

    @Test
    void branchNearIsDirect() throws LoadException {
        LinkedImage img = link("plt", "        call ext\n        ret", NEAR, "R_X86_64_PLT32");
        assertEquals((int) (NEAR - 4 - (BASE + 1)), le(img).getInt(1));
        assertEquals(0, img.veneers());
    }

    @Test
    void branchFarGoesThroughAVeneer() throws LoadException {
        LinkedImage img = link("pltfar", "        call ext\n        ret", FAR, "R_X86_64_PLT32");
        assertEquals(1, img.veneers());
        int disp = le(img).getInt(1);
        long veneer = BASE + 5 + disp;
        int at = (int) (veneer - BASE);
        assertEquals(0, veneer % 16, "veneers are 16-byte aligned");
        assertArrayEquals(new byte[] {(byte) 0xff, 0x25, 0, 0, 0, 0}, java.util.Arrays.copyOfRange(img.bytes(), at,
            at + 6), "jmp [rip+0]");
        assertEquals(FAR, le(img).getLong(at + 6), "the veneer's target");
    }

    @Test
    void pointer32AndSigned32() throws LoadException {
        // b8 <imm32>: mov $ext, %eax (R_X86_64_32); 48 c7 c0 <imm32>: mov $ext, %rax (R_X86_64_32S)
        LinkedImage a = link("abs32", "        mov $ext+16, %eax\n        ret", NEAR, "R_X86_64_32 ");
        assertEquals((int) (NEAR + 16), le(a).getInt(1));
        LinkedImage b = link("abs32s", "        movq $ext, %rax\n        ret", NEAR, "R_X86_64_32S");
        assertEquals((int) NEAR, le(b).getInt(3));
        LoadException e = assertThrows(LoadException.class,
            () -> link("abs32far", "        mov $ext, %eax\n        ret", FAR, "R_X86_64_32 "));
        assertTrue(e.getMessage().contains("R_X86_64_32") && e.getMessage().contains("-fPIE"), e.getMessage());
    }

    @Test
    void gotRelativeKindsShareOneGotEntry() throws LoadException {
        LinkedImage img = link("got", """
                    movq ext@GOTPCREL(%rip), %rax
                    call *ext@GOTPCREL(%rip)
                    ret""", FAR, "R_X86_64_REX_GOTPCRELX");
        assertEquals(1, img.gotEntries());
        // 48 8b 05 <d>: fixup at 3, next insn at 7; ff 15 <d>: fixup at 9, next insn at 13
        long got1 = BASE + 7 + le(img).getInt(3);
        long got2 = BASE + 13 + le(img).getInt(9);
        assertEquals(got1, got2);
        assertEquals(FAR, le(img).getLong((int) (got1 - BASE)), "G holds S");
        Gcc.tool("true");
        LinkedImage plain = link("gotplain", "        movq ext@GOTPCREL(%rip), %rax\n        ret", FAR,
            "R_X86_64_GOTPCREL ", "-Wa,-mrelax-relocations=no");
        assertEquals(FAR, le(plain).getLong((int) (BASE + 7 + le(plain).getInt(3) - BASE)));
        link("gotx", "        call *ext@GOTPCREL(%rip)\n        ret", FAR, "R_X86_64_GOTPCRELX");
    }

    @Test
    void onlySectionsReachableFromTheEntryAreLinked() throws LoadException {
        Path o = Gcc.object(dir, "sections", """
            static const char used[] = "used";
            const char *f(void) { return used; }
            int unrelated(void) { extern int nowhere(void); return nowhere(); }
            """, "-O2", "-ffunction-sections", "-fdata-sections");
        LinkedImage img = Linker.link(RelocatableObject.read(o), "f", (n, s) -> null, BASE);
        Map<String, Long> placed = img.sections();
        assertTrue(placed.containsKey(".text.f") && placed.containsKey(".rodata.used"), placed.toString());
        assertTrue(!placed.containsKey(".text.unrelated"), "unreachable code and its unresolved call are left out");
    }

    @Test
    void unresolvedNamesInASharedTextSectionSuggestFunctionSections() throws LoadException {
        Path o = Gcc.object(dir, "shared", """
            const char *f(void) { return "f"; }
            int unrelated(void) { extern int nowhere(void); return nowhere(); }
            """, "-O2");
        LoadException e = assertThrows(LoadException.class,
            () -> Linker.link(RelocatableObject.read(o), "f", (n, s) -> null, BASE));
        assertTrue(e.getMessage().contains("cannot resolve 1 symbol(s) needed by 'f': nowhere"), e.getMessage());
        assertTrue(e.getMessage().contains("-ffunction-sections -fdata-sections"), e.getMessage());
    }

    @Test
    void pcRelative64() throws LoadException {
        LinkedImage img = link("pc64", "        ret\n        .quad ext - .", FAR, "R_X86_64_PC64");
        assertEquals(FAR - (BASE + 1), le(img).getLong(1), "S + A - P over the full 64 bits");
    }

    /** The large-model way to reach data: GOT base from rip, then offsets from it. */
    @Test
    void gotBaseAndGotOffsets() throws LoadException {
        LinkedImage img = link("gotoff", """
            1:      lea 1b(%rip), %rbx
                    movabs $_GLOBAL_OFFSET_TABLE_-1b, %r11
                    movabs $ext@GOTOFF, %rax
                    lea _GLOBAL_OFFSET_TABLE_(%rip), %rcx
                    ret""", NEAR, "R_X86_64_GOTPC64");
        // 48 8d 1d <d32> (7) | 49 bb <imm64> (10, imm at 9) | 48 b8 <imm64> (10, imm at 19) | 48 8d 0d <d32> (at 30)
        long gotBase = BASE + le(img).getLong(9);
        assertEquals(0, gotBase % 8, "the GOT base is where the (empty) GOT starts");
        assertTrue(gotBase > BASE && gotBase <= BASE + img.size());
        assertEquals(NEAR - gotBase, le(img).getLong(19), "GOTOFF64: S + A - GOT");
        assertEquals(gotBase, BASE + 34 + le(img).getInt(30), "GOTPC32: GOT + A - P");
    }

    @Test
    void symbolSizes() throws LoadException {
        LinkedImage img = link("size", """
                    ret
                    .long table@SIZE
                    .quad table@SIZE + 8
                    .section .rodata
                    .globl table
            table:  .zero 24
                    .size table, 24
                    .text""", NEAR, "R_X86_64_SIZE32");
        assertEquals(24, le(img).getInt(1));
        assertEquals(32, le(img).getLong(5));
    }

    @Test
    void unsupportedRelocationNamesTypeSectionAndOffset() {
        LoadException e = assertThrows(LoadException.class,
            () -> link("r16", "        ret\n        .word ext", NEAR, "R_X86_64_16"));
        assertEquals(LoadException.Kind.LINK, e.kind());
        assertTrue(e.getMessage().contains("unsupported relocation R_X86_64_16 at .text+0x1 against 'ext'"),
            e.getMessage());
    }

    /** The FDEs of an image's unwind information: {pc_begin, pc_range} each, after checking every CIE pointer. */
    static java.util.List<long[]> fdes(LinkedImage img) {
        ByteBuffer b = le(img);
        int o = (int) (img.unwindInfo() - img.base());
        java.util.Set<Integer> cies = new java.util.HashSet<>();
        java.util.List<long[]> out = new java.util.ArrayList<>();
        while (true) {
            int length = b.getInt(o);
            if (length == 0) {
                break;
            }
            int id = b.getInt(o + 4);
            if (id == 0) {
                cies.add(o);
            } else {
                assertTrue(cies.contains(o + 4 - id), "FDE at +" + o + " points at a CIE");
                long field = img.base() + o + 8;
                out.add(new long[] {field + b.getInt(o + 8), b.getInt(o + 12)});
            }
            o += 4 + length;
        }
        return out;
    }

    @Test
    void unwindInfoDescribesExactlyTheCodePlaced() throws LoadException {
        Path o = Gcc.object(dir, "unwind", """
            int f(int x) { extern int g(int); return g(x) + 1; }
            int unrelated(int x) { extern int g(int); return g(x) * 2; }
            """, "-O2", "-ffunction-sections");
        LinkedImage img = Linker.link(RelocatableObject.read(o), "f",
            (n, s) -> new SymbolResolver.Resolution(NEAR, "test"), BASE);
        assertTrue(img.unwindInfo() > img.base(), "unwind info placed");
        java.util.List<long[]> fdes = fdes(img);
        assertEquals(1, fdes.size(), "one FDE: f's, not unrelated's");
        assertEquals(img.entryAddress(), fdes.get(0)[0], "the FDE's pc_begin is f's new address");
        assertEquals(img.sections().get(".text.f") + 0, fdes.get(0)[0]);
    }

    @Test
    void cxxUnwindInfoBringsItsExceptionTablesAndPersonality() throws LoadException {
        Path o = Gcc.object(dir, "throws.cc", """
            #include <stdexcept>
            struct Guard { int *p; ~Guard() { (*p)++; } };
            int cleanups;
            int check(int x) {
                Guard g{&cleanups};
                if (x % 5 == 0) throw std::runtime_error("bad");
                return x * 2;
            }
            int other(int x) { try { return check(x); } catch (int) { return -2; } }
            """, "-O2", "-ffunction-sections");
        // A worker without a DW.ref cell of its own (a C program that loaded libstdc++): the patch brings its own.
        LinkedImage img = Linker.link(RelocatableObject.read(o), "_Z5checki",
            (n, s) -> n.startsWith("DW.ref.") ? null : new SymbolResolver.Resolution(NEAR, "test"), BASE);
        java.util.List<long[]> fdes = fdes(img);
        for (long[] fde : fdes) {
            assertTrue(img.codeFrom(fde[0]) != null, "every FDE describes code placed: " + Long.toHexString(fde[0]));
        }
        assertTrue(fdes.stream().anyMatch(f -> f[0] == img.entryAddress()), "check() has its FDE");
        assertTrue(img.sections().keySet().stream().anyMatch(n -> n.startsWith(".gcc_except_table")),
            "check()'s cleanup table is placed: " + img.sections());
        Long personality = img.sections().get(".data.rel.local.DW.ref.__gxx_personality_v0");
        assertTrue(personality != null, "the personality cell is placed: " + img.sections());
        assertEquals(NEAR, le(img).getLong((int) (personality - BASE)), "and holds the worker's personality routine");
        assertTrue(!img.sections().containsKey(".text._Z5otheri"), "other() is not placed");
        // A C++ worker has the cell (a COMDAT copy): the patch uses the worker's, like a linker keeping one copy.
        long workerCell = NEAR + 0x100;
        LinkedImage bound = Linker.link(RelocatableObject.read(o), "_Z5checki", (n, s) -> new SymbolResolver.Resolution(
            n.equals("DW.ref.__gxx_personality_v0") ? workerCell : NEAR, "test"), BASE);
        assertTrue(!bound.sections().containsKey(".data.rel.local.DW.ref.__gxx_personality_v0"), bound.sections()
            .toString());
        assertEquals(workerCell, bound.bindings().get("DW.ref.__gxx_personality_v0").address());
    }
}
