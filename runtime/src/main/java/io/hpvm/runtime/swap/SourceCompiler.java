package io.hpvm.runtime.swap;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * Compiles a C or C++ source file into a relocatable object with the system compiler ({@code cc -c}, or
 * {@code c++ -c} for .cc, .cpp, .cxx, .C; {@code $CC} and {@code $CXX} override them), for
 * {@code hpvm swap FN file.c} and {@code hpvm patch}: the flags are the ones given with {@code --cflags}, or those
 * the worker was started with ({@code hpvm run --cflags}), split on whitespace.
 */
public final class SourceCompiler {

    private SourceCompiler() {
    }

    private static final Pattern SOURCE = Pattern.compile("\\.(c|cc|cpp|cxx|c\\+\\+|C)$");

    /** True for the file names handled as source rather than as an object. */
    public static boolean isSource(Path file) {
        return SOURCE.matcher(file.getFileName().toString()).find();
    }

    /** {@code $CC} / {@code $CXX} when set (one word: the compiler the program was built with), else the default. */
    private static String compiler(String variable, String fallback) {
        String v = System.getenv(variable);
        return v == null || v.isBlank() ? fallback : v.trim();
    }

    private static boolean isCxx(Path file) {
        return isSource(file) && !file.getFileName().toString().endsWith(".c");
    }

    /** Compiles {@code source} and returns the object file (in a temporary directory). */
    public static Path compile(Path source, String flags) throws HpvmException {
        if (!Files.isRegularFile(source)) {
            throw new HpvmException(ExitCode.BAD_FILE, source + ": no such file");
        }
        List<String> cmd = new ArrayList<>(List.of(compiler(isCxx(source) ? "CXX" : "CC", isCxx(source) ? "c++" : "cc"),
            "-c"));
        for (String f : flags.trim().split("\\s+")) {
            if (!f.isEmpty()) {
                cmd.add(f);
            }
        }
        try {
            Path dir = Files.createTempDirectory("hpvm-cc");
            Path object = dir.resolve(SOURCE.matcher(source.getFileName().toString()).replaceAll(".o"));
            cmd.addAll(List.of("-o", object.toString(), source.toString()));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new HpvmException(ExitCode.BAD_FILE, "compiling " + source + " failed (" + String.join(" ", cmd)
                    + "):\n" + out.strip());
            }
            return object;
        } catch (IOException e) {
            throw new HpvmException(ExitCode.SYSTEM, "cannot run the compiler (" + String.join(" ", cmd) + "): "
                + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HpvmException(ExitCode.SYSTEM, "interrupted while compiling " + source, e);
        }
    }
}
