package io.hpvm.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Compiles C sources with the system gcc, as a user would. */
public final class Gcc {
    private Gcc() {
    }

    /** Runs a tool (objdump, readelf, nm) and returns its standard output. */
    public static String tool(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new AssertionError(String.join(" ", cmd) + " failed:\n" + out);
            }
            return out;
        } catch (IOException | InterruptedException e) {
            throw new AssertionError("cannot run " + String.join(" ", cmd) + ": " + e, e);
        }
    }

    /** Writes {@code name.c} and links it into the executable {@code name}. */
    public static Path executable(Path dir, String name, String source, String... flags) {
        Path src = write(dir, name + ".c", source);
        Path out = dir.resolve(name);
        run(dir, flags, "-o", out.toString(), src.toString());
        return out;
    }

    /** Compiles and links files already in {@code dir} ({@code flagsAndFiles}) into the executable {@code name}. */
    public static Path link(Path dir, String name, String... flagsAndFiles) {
        Path out = dir.resolve(name);
        run(dir, flagsAndFiles, "-o", out.toString());
        return out;
    }

    /** Writes {@code name.c} (or uses the extension given) and compiles it with {@code -c} into {@code name.o}. */
    public static Path object(Path dir, String name, String source, String... flags) {
        Path src = write(dir, name.contains(".") ? name : name + ".c", source);
        Path out = dir.resolve(name.replaceAll("\\.[a-zA-Z]+$", "") + ".o");
        List<String> f = new ArrayList<>(List.of(flags));
        f.add("-c");
        run(dir, f.toArray(new String[0]), "-o", out.toString(), src.toString());
        return out;
    }

    public static Path write(Path dir, String file, String content) {
        try {
            Files.createDirectories(dir);
            return Files.writeString(dir.resolve(file), content, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static void run(Path dir, String[] flags, String... rest) {
        List<String> cmd = new ArrayList<>(List.of("gcc"));
        cmd.addAll(List.of(flags));
        cmd.addAll(List.of(rest));
        try {
            Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new AssertionError("gcc failed: " + String.join(" ", cmd) + "\n" + out);
            }
        } catch (IOException | InterruptedException e) {
            throw new AssertionError("cannot run gcc (" + String.join(" ", cmd) + "): " + e, e);
        }
    }
}
