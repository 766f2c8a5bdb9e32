package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Separate debug files found as gdb finds them, made the way distributions make them (objcopy, strip). */
class DebugFilesTest {

    @TempDir
    Path dir;

    static final String PROGRAM = """
        #include <stdio.h>
        static long counter;
        static __attribute__((noinline)) long helper(long x) { return x + ++counter; }
        __attribute__((noinline)) long compute(long x) { return helper(x) * 2; }
        int main(int argc, char **argv) { printf("%ld\\n", compute(argc)); return 0; }
        """;

    /** {name}: the program, {name}.debug (only-keep-debug), {name}.stripped (strip --strip-all, debuglink added). */
    Path[] build(String name, String... flags) {
        Path exe = Gcc.executable(dir, name, PROGRAM, flags);
        Path debug = dir.resolve(name + ".debug");
        Gcc.tool("objcopy", "--only-keep-debug", exe.toString(), debug.toString());
        Path stripped = dir.resolve(name + ".stripped");
        Gcc.tool("strip", "--strip-all", "-o", stripped.toString(), exe.toString());
        Gcc.tool("objcopy", "--add-gnu-debuglink=" + debug, stripped.toString());
        return new Path[] {exe, debug, stripped};
    }

    static Symbol named(ElfImage img, String name) {
        return img.symbols().stream().filter(s -> s.name().equals(name)).findFirst().orElse(null);
    }

    @Test
    void aStrippedProgramGetsItsStaticsFromTheFileItsDebugLinkNames() throws LoadException {
        Path[] f = build("prog", "-O2", "-g");
        ElfImage stripped = ElfImage.read(f[2]);
        assertFalse(stripped.hasSymtab());
        assertEquals("prog.debug", stripped.debugLink().getKey());
        DebugFiles.Found found = DebugFiles.find(stripped, null, v -> null);
        assertEquals("symbols from " + f[1] + " (.gnu_debuglink)", found.how());
        Symbol helper = named(found.image(), "helper");
        assertNotNull(helper, "the static function");
        Symbol original = named(ElfImage.read(f[0]), "helper");
        assertEquals(original.value(), helper.value());
        assertEquals(".text", found.image().sections().get(helper.sectionIndex()).name(), "renumbered to the "
            + "stripped file's own .text");
        assertNotNull(named(found.image(), "counter"), "the file static");
        assertEquals(f[1], found.image().symbolFile());
    }

    @Test
    void byBuildIdInTheDebuginfodCache() throws LoadException, IOException {
        Path[] f = build("byid", "-O2");
        ElfImage stripped = ElfImage.read(f[2]);
        String id = stripped.buildId();
        assertEquals(40, id.length());
        Files.delete(f[1]); // not beside it any more
        Path cache = dir.resolve("cache");
        Files.createDirectories(cache.resolve(id));
        Path debug = Files.copy(ElfImage.read(f[0]).path(), cache.resolve(id).resolve("debuginfo"));
        Map<String, String> env = Map.of("DEBUGINFOD_CACHE_PATH", cache.toString());
        DebugFiles.Found found = DebugFiles.find(stripped, null, env::get);
        assertEquals("symbols from " + debug + " (build-id)", found.how());
        assertNotNull(named(found.image(), "helper"));
    }

    @Test
    void aDebugFileOfAnotherBuildIsRefused() throws LoadException {
        Path[] f = build("one", "-O2");
        Path[] other = build("two", "-O1");
        ElfImage stripped = ElfImage.read(f[2]);
        LoadException e = assertThrows(LoadException.class, () -> DebugFiles.find(stripped, other[1], v -> null));
        assertTrue(e.getMessage().matches("--debug-file .*two.debug is not .*one.stripped's debug file: build-id "
            + "[0-9a-f]{40}, the program's [0-9a-f]{40}"), e.getMessage());
        // Found by its link name but of another build: skipped, and said so.
        Gcc.tool("cp", other[1].toString(), f[1].toString());
        DebugFiles.Found none = DebugFiles.find(stripped, null, v -> null);
        assertSame(stripped, none.image());
        assertTrue(none.how().startsWith("no .symtab and no debug file found; not matching: " + f[1] + " (build-id"),
            none.how());
        assertTrue(DebugFiles.find(stripped, f[0], v -> null).image().hasSymtab(), "the unstripped program itself "
            + "serves as --debug-file");
    }
}
