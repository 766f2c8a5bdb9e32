package io.hpvm.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Real objects to mutate: a C file (statics, a table of strings, TLS, printf, a local helper) and a C++ file
 * (exceptions with catch clauses, a vtable, a template instance, an inline function's static: COMDAT groups, LSDA,
 * .eh_frame with a personality), compiled by gcc, g++, clang and clang++ (those present) at several flag sets, each
 * with an executable built from the same source. Built once per JVM.
 */
public final class FuzzCorpus {

    /**
     * One real object.
     *
     * @param name       what it is ("c gcc -O2"), for messages
     * @param object     the object file
     * @param executable an executable linked from the same source and flags
     * @param entries    functions it defines that a swap would name
     */
    public record Entry(String name, Path object, Path executable, List<String> entries) {
        public byte[] bytes() {
            try {
                return Files.readAllBytes(object);
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }
    }

    public static final String C_SOURCE = """
        #include <stdio.h>
        #include <string.h>
        struct item { const char *name; long price; };
        static const struct item table[] = {{"apple", 3}, {"pear", 5}, {"plum", 7}};
        long total;
        static long served;
        __thread long per_thread;
        static long helper(long x) { return x * 7 + table[x % 3].price; }
        long fee(long x) {
            served++;
            per_thread++;
            total += helper(x);
            if (x > 100) printf("big %ld %s\\n", x, table[x % 3].name);
            return total + (long) strlen(table[x % 3].name);
        }
        long other(long x) { return fee(x) + served; }
        int main(int argc, char **argv) { (void) argv; return (int) other(argc); }
        """;

    public static final String CXX_SOURCE = """
        #include <stdexcept>
        #include <vector>
        struct Shape { virtual ~Shape() {} virtual long area() const = 0; };
        struct Square : Shape { long s; explicit Square(long v) : s(v) {} long area() const override { return s * s; } };
        template <typename T> T twice(T x) { return x + x; }
        inline long counter() { static long n; return ++n; }
        long fee(long x) {
            if (x < 0) throw std::invalid_argument("negative");
            std::vector<long> v(3, x);
            Square sq(x);
            try {
                if (x == 13) throw std::runtime_error("thirteen");
            } catch (const std::exception &) {
                return -1;
            }
            return twice(v[1]) + sq.area() + counter();
        }
        int main(int argc, char **) { return (int) fee(argc); }
        """;

    private static List<Entry> entries;

    private FuzzCorpus() {
    }

    public static synchronized List<Entry> get() {
        if (entries == null) {
            entries = build();
        }
        return entries;
    }

    private static List<Entry> build() {
        Path dir;
        try {
            dir = Files.createTempDirectory("hpvm-fuzz-corpus");
            dir.toFile().deleteOnExit();
            Files.writeString(dir.resolve("fee.c"), C_SOURCE, StandardCharsets.UTF_8);
            Files.writeString(dir.resolve("fee.cc"), CXX_SOURCE, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        List<Entry> out = new ArrayList<>();
        String[][] builds = {
            {"gcc", "fee.c", "-O2"}, {"gcc", "fee.c", "-O0 -g"}, {"gcc", "fee.c", "-O2 -fPIC -ffunction-sections "
            + "-fdata-sections"}, {"gcc", "fee.c", "-O3 -fno-pie -no-pie -fcf-protection=full"},
            {"g++", "fee.cc", "-O2"}, {"g++", "fee.cc", "-O0 -fPIC -g"},
            {"clang", "fee.c", "-O2 -g"}, {"clang++", "fee.cc", "-O2"}};
        for (String[] b : builds) {
            if (!onPath(b[0])) {
                continue;
            }
            String tag = b[0].replace("+", "x") + out.size();
            Path object = dir.resolve(tag + ".o");
            Path exe = dir.resolve(tag);
            List<String> flags = List.of(b[2].split(" "));
            List<String> compile = new ArrayList<>(List.of(b[0]));
            compile.addAll(flags.stream().filter(f -> !f.equals("-no-pie")).toList());
            compile.addAll(List.of("-c", "-o", object.toString(), b[1]));
            run(dir, compile);
            List<String> link = new ArrayList<>(List.of(b[0]));
            link.addAll(flags);
            link.addAll(List.of("-o", exe.toString(), b[1]));
            run(dir, link);
            out.add(new Entry((b[1].endsWith(".cc") ? "c++ " : "c ") + b[0] + " " + b[2], object, exe,
                b[1].endsWith(".cc") ? List.of("_Z3feel") : List.of("fee", "other")));
        }
        return out;
    }

    private static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            if (Files.isExecutable(Path.of(d.isEmpty() ? "." : d, tool))) {
                return true;
            }
        }
        return false;
    }

    private static void run(Path dir, List<String> cmd) {
        try {
            Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new AssertionError(String.join(" ", cmd) + " failed:\n" + out);
            }
        } catch (IOException | InterruptedException e) {
            throw new AssertionError("cannot run " + String.join(" ", cmd) + ": " + e, e);
        }
    }
}
