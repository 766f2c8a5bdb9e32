package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ELF reader against binutils' view of the same files. */
class ElfImageTest {

    @TempDir
    Path dir;

    static final String PROGRAM = """
        #include <stdio.h>
        int global_counter = 3;
        static int file_static;
        static __attribute__((noinline)) int helper(int x) { return x + file_static++; }
        __attribute__((noinline)) int twice(int x) { return helper(x) * 2; }
        int main(void) { printf("%d\\n", twice(global_counter)); return 0; }
        """;

    /** nm's defined text symbols: name -> address. */
    static Map<String, Long> nmFunctions(Path file) {
        Map<String, Long> out = new TreeMap<>();
        for (String line : Gcc.tool("nm", "--defined-only", file.toString()).split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length == 3 && (f[1].equals("T") || f[1].equals("t"))) {
                out.put(f[2], Long.parseUnsignedLong(f[0], 16));
            }
        }
        return out;
    }

    @Test
    void symbolsMatchNmForPieAndNonPie() throws LoadException {
        for (String[] flags : new String[][] {{"-O2", "-pie", "-fPIE"}, {"-O0", "-no-pie", "-fno-pie"}}) {
            Path exe = Gcc.executable(dir, "prog" + flags[1], PROGRAM, flags);
            ElfImage img = ElfImage.read(exe);
            assertTrue(img.hasSymtab());
            assertEquals(flags[1].equals("-pie"), img.isPositionIndependent());
            Map<String, Long> ours = new TreeMap<>();
            for (Symbol s : img.symbols()) {
                if (s.isFunction() && s.isDefined()) {
                    ours.put(s.name(), s.value());
                }
            }
            Map<String, Long> nm = nmFunctions(exe);
            nm.keySet().retainAll(ours.keySet()); // nm's T/t also lists non-FUNC labels
            assertTrue(nm.keySet().containsAll(java.util.List.of("main", "twice", "helper")), nm.toString());
            for (Map.Entry<String, Long> e : nm.entrySet()) {
                assertEquals(e.getValue(), ours.get(e.getKey()), "address of " + e.getKey());
            }
            Symbol helper = img.symbols().stream().filter(s -> s.name().equals("helper")).findFirst().orElseThrow();
            assertTrue(helper.isLocal());
            assertEquals("prog" + flags[1] + ".c", helper.file(), "local symbols carry their STT_FILE");
            String notes = Gcc.tool("readelf", "-n", exe.toString());
            assertTrue(notes.contains("Build ID: " + img.buildId()), notes);
            assertFalse(img.executableSegments().isEmpty());
        }
    }

    @Test
    void sharedLibraryExportsOnlyDefaultVersions() throws LoadException {
        ElfImage libc = ElfImage.read(Path.of("/lib/x86_64-linux-gnu/libc.so.6"));
        long memcpy = libc.exportedSymbols().stream().filter(s -> s.name().equals("memcpy")).count();
        assertEquals(1, memcpy, "memcpy@@GLIBC_2.14 only, not the hidden memcpy@GLIBC_2.2.5");
        assertTrue(libc.exportedSymbols().stream().anyMatch(s -> s.name().equals("printf")));
    }

    @Test
    void relocatableObjectMatchesReadelf() throws LoadException {
        Path o = Gcc.object(dir, "obj", PROGRAM, "-O2");
        RelocatableObject obj = RelocatableObject.read(o);
        int text = -1;
        for (Section s : obj.sections()) {
            if (s.name().equals(".text")) {
                text = s.index();
            }
        }
        String readelf = Gcc.tool("readelf", "-rW", o.toString());
        int count = 0;
        for (Relocation r : obj.relocations(text)) {
            String name = obj.symbols().get(r.symbolIndex()).name();
            String line = String.format("%016x", r.offset());
            assertTrue(readelf.contains(line) && readelf.contains(Elf.relocationName(r.type())),
                "readelf lists " + line + " " + Elf.relocationName(r.type()) + " " + name + ":\n" + readelf);
            count++;
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(
            "Relocation section '\\.rela\\.text' at offset 0x[0-9a-f]+ contains (\\d+) entr").matcher(readelf);
        assertTrue(m.find(), readelf);
        int listed = Integer.parseInt(m.group(1));
        assertEquals(listed, count, readelf);
    }

    @Test
    void rejectsWhatIsNotElf() throws Exception {
        Path text = Gcc.write(dir, "t.o", "hello, this is text and not an ELF file at all. ".repeat(4));
        LoadException e = org.junit.jupiter.api.Assertions.assertThrows(LoadException.class,
            () -> RelocatableObject.read(text));
        assertEquals(LoadException.Kind.BAD_FILE, e.kind());
        assertTrue(e.getMessage().contains("t.o: not an ELF file"), e.getMessage());
    }
}
