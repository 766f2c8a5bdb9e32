package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** An object against the executable built from it (nothing differs) and from its previous version. */
class ImageDiffTest {

    static final Path SHOP = Path.of("..", "examples", "shop");

    @TempDir
    Path dir;

    Map<String, String> verdicts(String flags, String pricing) throws Exception {
        for (String f : List.of("main.c", "orders.c", "pricing.c", "inventory.c", "shop.h")) {
            Files.copy(SHOP.resolve(f), dir.resolve(f));
        }
        List<String> build = new ArrayList<>(Arrays.asList(flags.split(" ")));
        build.addAll(List.of("main.c", "orders.c", "pricing.c", "inventory.c"));
        Path exe = Gcc.link(dir, "shop", build.toArray(new String[0]));
        Path obj = Gcc.object(dir, "p", pricing, flags.split(" "));
        ImageDiff.Result r = ImageDiff.compare(RelocatableObject.read(obj), ElfImage.read(exe));
        Map<String, String> out = new TreeMap<>();
        for (ImageDiff.Match m : r.matches()) {
            out.put(m.name(), m.same() ? "same" : m.difference());
        }
        return out;
    }

    static String source() throws IOException {
        return Files.readString(SHOP.resolve("pricing.c")).replace("\"shop.h\"", "\"" + SHOP.toAbsolutePath()
            .resolve("shop.h") + "\"");
    }

    @ParameterizedTest
    @ValueSource(strings = {"-O0", "-O2", "-O2 -fPIC -g", "-O3 -ffunction-sections", "-O2 -fno-pie -no-pie",
        "-O0 -fPIC"})
    void theObjectTheProgramWasBuiltFromIsTheSame(String flags) throws Exception {
        Map<String, String> v = verdicts(flags, source());
        assertTrue(v.containsKey("quote") && v.containsKey("tax"), v.toString());
        v.forEach((name, verdict) -> assertEquals("same", verdict, name + " with " + flags + ": " + v));
    }

    @ParameterizedTest
    @ValueSource(strings = {"-O0", "-O2", "-O2 -fPIC -g", "-O3 -ffunction-sections", "-O2 -fno-pie -no-pie"})
    void oneEditedLineChangesOnlyItsFunction(String flags) throws Exception {
        Map<String, String> v = verdicts(flags, source().replace("* 3;", "* 4;"));
        String edited = v.containsKey("unit_price") ? "unit_price" : "quote";
        assertTrue(!v.get(edited).equals("same"), v.toString());
        v.forEach((name, verdict) -> {
            if (!name.equals(edited)) {
                assertEquals("same", verdict, name + " with " + flags + ": " + v);
            }
        });
    }

    /** C++: string literals behind .LC labels, COMDAT instances, throw/catch, .cold parts. */
    @ParameterizedTest
    @ValueSource(strings = {"g++ -O2", "g++ -O0", "g++ -O2 -fPIC", "clang++ -O2", "clang++ -O0 -fPIC"})
    void cxxObjectTheProgramWasBuiltFromIsTheSame(String build) throws Exception {
        String flags = build.substring(build.indexOf(' ') + 1);
        String src = """
            #include <stdexcept>
            #include <string>
            #include <cstdio>
            __attribute__((noinline)) int parse(int x) {
                if (x % 3 == 0) throw std::runtime_error("multiple of three: " + std::to_string(x));
                return x * 10;
            }
            int main(int argc, char **) {
                try { std::printf("%d\\n", parse(argc)); } catch (const std::exception &e) { std::puts(e.what()); }
            }
            """;
        Path cc = Gcc.write(dir, "p.cc", src);
        List<String> cmd = new ArrayList<>(Arrays.asList(build.split(" ")));
        Gcc.tool(concat(cmd, "-o", dir.resolve("p").toString(), cc.toString()));
        Gcc.tool(concat(cmd, "-c", "-o", dir.resolve("p.o").toString(), cc.toString()));
        ImageDiff.Result r = ImageDiff.compare(RelocatableObject.read(dir.resolve("p.o")),
            ElfImage.read(dir.resolve("p")));
        assertTrue(r.matches().stream().anyMatch(m -> m.name().equals("_Z5parsei")), r.toString());
        for (ImageDiff.Match m : r.matches()) {
            assertTrue(m.same(), m + " with " + build + ": " + r);
        }
    }

    static String[] concat(List<String> head, String... tail) {
        List<String> all = new ArrayList<>(head);
        all.addAll(List.of(tail));
        return all.toArray(new String[0]);
    }
}
