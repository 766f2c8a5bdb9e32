package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Inlined copies found in DWARF as gcc (DWARF 5, strp) and clang (DWARF 5, strx) write it, and DWARF 4. */
class DwarfInlinesTest {

    static final String SOURCE = """
        #include <stdio.h>
        long price(long x) { return x * 10 + 1; }
        long api(long x) { return price(x) * 2; }
        int main(int argc, char **argv) { printf("%ld %ld\\n", price(argc), api(argc)); return 0; }
        """;

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"gcc -O2 -g", "gcc -O2 -gdwarf-4", "clang -O2 -g", "clang -O2 -gdwarf-4"})
    void inlinedCopiesAndWhereTheyAre(String build) throws Exception {
        Path src = Gcc.write(dir, "w.c", SOURCE);
        Path exe = dir.resolve("w");
        String[] words = build.split(" ");
        String[] cmd = new String[words.length + 3];
        System.arraycopy(words, 0, cmd, 0, words.length);
        cmd[words.length] = "-o";
        cmd[words.length + 1] = exe.toString();
        cmd[words.length + 2] = src.toString();
        Gcc.tool(cmd);
        Map<String, Set<String>> found = DwarfInlines.inlinedInto(ElfImage.read(exe), Set.of("price", "api", "nope"));
        assertTrue(found.getOrDefault("price", Set.of()).contains("main"), build + ": " + found);
        assertTrue(!found.containsKey("nope"), build + ": " + found);
        if (build.startsWith("gcc")) {
            assertEquals(Set.of("api", "main"), found.get("price"), build + ": " + found);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gcc -O2", "clang -O2"})
    void withoutDebugInformationThereIsNothingToSay(String build) throws Exception {
        Path src = Gcc.write(dir, "w.c", SOURCE);
        Path exe = dir.resolve("w");
        Gcc.tool(build.split(" ")[0], build.split(" ")[1], "-o", exe.toString(), src.toString());
        assertEquals(Map.of(), DwarfInlines.inlinedInto(ElfImage.read(exe), Set.of("price")));
    }
}
