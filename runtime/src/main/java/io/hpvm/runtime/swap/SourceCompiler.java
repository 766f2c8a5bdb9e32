package io.hpvm.runtime.swap;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.session.SessionDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Compiles C or C++ source files into relocatable objects with the system compiler ({@code cc -c}, or
 * {@code c++ -c} for .cc, .cpp, .cxx, .C; {@code $CC} and {@code $CXX} override them), for
 * {@code hpvm swap FN file.c} and {@code hpvm patch}: the flags are the ones given with {@code --cflags}, or those
 * the worker was started with ({@code hpvm run --cflags}), split on whitespace, plus
 * {@code -ffunction-sections -fdata-sections} unless they say otherwise (so that one function does not bring its
 * file's other code and statics along), and {@code -g} unless they have a {@code -g} option (so that gdb names the
 * patch's source lines: {@code swap/DebuggerRegistration}).
 *
 * <p>One instance serves one command, in a directory of its own in the session ({@link SessionDir#newCompileDir}),
 * removed with the session. Every file is compiled from a copy named as the file is compiled ({@link #compiledName}),
 * {@code DIR/src-N/NAME}, with {@code -ffile-prefix-map=DIR/src-N/=}: an old and a new version of a file then differ
 * only where they were edited ({@code __FILE__} is {@code NAME} in both, as in a build run in the source directory),
 * and compilations may run at once. The compiler runs in the user's working directory (relative {@code -I} flags
 * work), with {@code -iquote} the file's own directory so that its {@code #include "..."} files are found as before.
 */
public final class SourceCompiler {

    /**
     * A source file name: {@code x.c}, {@code x.cc}, ..., also with a backup or edit suffix after it
     * ({@code x.c.orig}, {@code x.c.new}, {@code x.c~}), but not {@code x.c.o} (an object, as CMake names them).
     */
    private static final Pattern SOURCE = Pattern.compile("^(.*\\.(c|cc|cpp|cxx|c\\+\\+|C))(\\.(?!o$)[\\w-]+|~)?$");

    private final Path dir;
    private final Path cwd;
    private final UnaryOperator<String> env;
    private int objects;

    /**
     * A compiler for one command of session {@code session}, run in {@code cwd} (null: this process's) with the
     * user's environment {@code env}.
     */
    public SourceCompiler(SessionDir session, Path cwd, UnaryOperator<String> env) throws HpvmException {
        this.dir = session.newCompileDir();
        this.cwd = cwd;
        this.env = env;
    }

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
    private String compiler(String variable, String fallback) {
        String v = env.apply(variable);
        return v == null || v.isBlank() ? fallback : v.trim();
    }

    /**
     * Compiles {@code file} (the user's {@code source}, as they typed it, made absolute where they are) and returns
     * the object; messages name {@code source}.
     */
    public Path compile(Path source, Path file, String flags) throws HpvmException {
        if (!Files.isRegularFile(file)) {
            throw new HpvmException(ExitCode.BAD_FILE, source + ": no such file");
        }
        try {
            return compile(source, file.toAbsolutePath().getParent(), compiledName(file), Files.readString(file,
                StandardCharsets.ISO_8859_1), flags);
        } catch (IOException e) {
            throw new HpvmException(ExitCode.BAD_FILE, "cannot read " + source + ": " + e.getMessage(), e);
        }
    }

    /**
     * Compiles {@code edited} renumbered to {@code original}'s lines ({@link SourceLines#renumbered}) under its own
     * name, for finding what an edit changed; null when no line moved, or when the renumbered copy does not compile
     * (a directive landed where the compiler does not take one: the comparison is then made with the file as
     * written).
     */
    public Path compileRenumbered(Path source, Path original, Path edited, String flags) throws HpvmException {
        String renumbered;
        try {
            renumbered = SourceLines.renumbered(Files.readString(original, StandardCharsets.ISO_8859_1).lines()
                .toList(), Files.readString(edited, StandardCharsets.ISO_8859_1).lines().toList());
        } catch (IOException e) {
            throw new HpvmException(ExitCode.BAD_FILE, "cannot read " + source + ": " + e.getMessage(), e);
        }
        if (renumbered == null) {
            return null;
        }
        try {
            return compile(source, edited.toAbsolutePath().getParent(), compiledName(edited), renumbered, flags);
        } catch (HpvmException e) {
            return null;
        }
    }

    /**
     * Compiles {@code text} as the file {@code name} from directory {@code home} (for its quoted includes); messages
     * name {@code source}. The text is read and written as ISO-8859-1: bytes in, the same bytes out.
     */
    Path compile(Path source, Path home, String name, String text, String flags) throws HpvmException {
        boolean cxx = !name.endsWith(".c");
        List<String> cmd = new ArrayList<>(List.of(cxx ? compiler("CXX", "c++") : compiler("CC", "cc"), "-c"));
        List<String> given = new ArrayList<>();
        for (String f : flags.trim().split("\\s+")) {
            if (!f.isEmpty()) {
                given.add(f);
            }
        }
        cmd.addAll(given);
        if (given.stream().noneMatch(f -> f.endsWith("function-sections"))) {
            cmd.add("-ffunction-sections");
        }
        if (given.stream().noneMatch(f -> f.endsWith("data-sections"))) {
            cmd.add("-fdata-sections");
        }
        if (given.stream().noneMatch(f -> f.startsWith("-g"))) {
            cmd.add("-g"); // gdb names the patch's source lines (it never changes the code gcc generates)
        }
        int n;
        synchronized (this) {
            n = ++objects;
        }
        // Each compilation reads its copy from a directory of its own, so several may run at once ('hpvm patch'
        // compiles three); the prefix map makes the name the same in all of them.
        Path home2 = dir.resolve("src-" + n);
        Path copy = home2.resolve(name);
        String stem = name.replaceAll("\\.[^.]+$", "");
        Path object = dir.resolve(n == 1 ? stem + ".o" : stem + "-" + n + ".o");
        cmd.addAll(List.of("-ffile-prefix-map=" + home2 + "/=", "-iquote", home.toString(), "-o", object.toString(),
            copy.toString()));
        try {
            Files.createDirectory(home2);
            Files.writeString(copy, text, StandardCharsets.ISO_8859_1);
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            if (cwd != null) {
                pb.directory(cwd.toFile());
            }
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new HpvmException(ExitCode.BAD_FILE, "compiling " + source + " failed (" + String.join(" ", cmd)
                    .replace(copy.toString(), source.toString()) + "); the compiler said:", out.replace(
                    copy.toString(), source.toString()));
            }
            return object;
        } catch (IOException e) {
            throw new HpvmException(ExitCode.SYSTEM, "cannot compile " + source + " (" + String.join(" ", cmd) + "): "
                + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HpvmException(ExitCode.SYSTEM, "interrupted while compiling " + source, e);
        } finally {
            try {
                Files.deleteIfExists(copy);
                Files.deleteIfExists(home2);
            } catch (IOException e) {
                // left for the session's removal, which takes only files: the session directory then stays
            }
        }
    }
}
