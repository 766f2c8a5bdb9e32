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
import java.util.regex.Matcher;
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

    /**
     * A source file name: {@code x.c}, {@code x.cc}, ..., also with a backup or edit suffix after it
     * ({@code x.c.orig}, {@code x.c.new}, {@code x.c~}), but not {@code x.c.o} (an object, as CMake names them).
     */
    private static final Pattern SOURCE = Pattern.compile("^(.*\\.(c|cc|cpp|cxx|c\\+\\+|C))(\\.(?!o$)[\\w-]+|~)?$");

    /** True for the file names handled as source rather than as an object. */
    public static boolean isSource(Path file) {
        return SOURCE.matcher(file.getFileName().toString()).matches();
    }

    /**
     * The name the file is compiled under: its own without a backup suffix ({@code pricing.c.orig} ->
     * {@code pricing.c}). It decides the language and becomes the object's {@code STT_FILE} symbol, by which the
     * patch's {@code static} names bind to the worker's of the same source file.
     */
    static String compiledName(Path file) {
        Matcher m = SOURCE.matcher(file.getFileName().toString());
        return m.matches() ? m.group(1) : file.getFileName().toString();
    }

    /** {@code $CC} / {@code $CXX} when set (one word: the compiler the program was built with), else the default. */
    private static String compiler(java.util.function.UnaryOperator<String> env, String variable, String fallback) {
        String v = env.apply(variable);
        return v == null || v.isBlank() ? fallback : v.trim();
    }

    /**
     * Compiles {@code source} and returns the object file (in a temporary directory, kept: the session's version
     * record names it). The file is compiled from a copy named {@link #compiledName}, with {@code -iquote} its own
     * directory so that its {@code #include "..."} files are found as before; diagnostics name the original file.
     */
    public static Path compile(Path source, String flags) throws HpvmException {
        return compile(source, source, flags, System::getenv);
    }

    /**
     * Compiles {@code file} (the user's {@code source}, as they typed it, made absolute where they are), with the
     * compiler their environment {@code env} names; messages name {@code source}.
     */
    public static Path compile(Path source, Path file, String flags, java.util.function.UnaryOperator<String> env)
        throws HpvmException {
        if (!Files.isRegularFile(file)) {
            throw new HpvmException(ExitCode.BAD_FILE, source + ": no such file");
        }
        String name = compiledName(file);
        boolean cxx = !name.endsWith(".c");
        List<String> cmd = new ArrayList<>(List.of(cxx ? compiler(env, "CXX", "c++") : compiler(env, "CC", "cc"),
            "-c"));
        for (String f : flags.trim().split("\\s+")) {
            if (!f.isEmpty()) {
                cmd.add(f);
            }
        }
        try {
            Path dir = Files.createTempDirectory("hpvm-cc");
            Path copy = Files.copy(file, dir.resolve(name));
            Path object = dir.resolve(name.replaceAll("\\.[^.]+$", "") + ".o");
            Path home = file.toAbsolutePath().getParent();
            cmd.addAll(List.of("-iquote", home.toString(), "-o", object.toString(), copy.toString()));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new HpvmException(ExitCode.BAD_FILE, "compiling " + source + " failed (" + String.join(" ", cmd)
                    .replace(copy.toString(), source.toString()) + "); the compiler said:", out.replace(
                    copy.toString(), source.toString()));
            }
            Files.delete(copy);
            return object;
        } catch (IOException e) {
            throw new HpvmException(ExitCode.SYSTEM, "cannot compile " + source + " (" + String.join(" ", cmd) + "): "
                + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HpvmException(ExitCode.SYSTEM, "interrupted while compiling " + source, e);
        }
    }
}
