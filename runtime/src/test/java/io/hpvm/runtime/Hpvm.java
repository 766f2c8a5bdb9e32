package io.hpvm.runtime;

import io.hpvm.runtime.cli.Main;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Runs short hpvm commands (swap, ls, rollback) against the test's session root: in-process, or through the native
 * fast path ({@code target/hpvm-client}, a real process) exactly as {@code bin/hpvm} does.
 */
public final class Hpvm {

    /** What a command printed and returned. */
    public record Result(int code, String out, String err) {
        @Override
        public String toString() {
            return "exit " + code + "\n--- stdout\n" + out + "--- stderr\n" + err;
        }
    }

    private Hpvm() {
    }

    /** Runs {@code hpvm ARGS} as a user would: through the session's supervisor when one answers. */
    public static Result cmd(Path sessionRoot, String... args) {
        return run(sessionRoot, true, args);
    }

    /** Runs {@code hpvm ARGS} in this process, never asking a supervisor (the slow path). */
    public static Result direct(Path sessionRoot, String... args) {
        return run(sessionRoot, false, args);
    }

    /** The native fast path, built by this module's compile phase. */
    public static Path nativeClient() {
        Path p = Path.of("target", "hpvm-client").toAbsolutePath();
        if (!Files.isExecutable(p)) {
            throw new IllegalStateException(p + " is missing: the runtime module's compile phase builds it with gcc");
        }
        return p;
    }

    /** What the native client alone did: its exit code (254: left to Java; 253: slow path) and output. */
    public static Result nativeOnly(Path sessionRoot, String... args) {
        List<String> cmd = new ArrayList<>(List.of(nativeClient().toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("HPVM_SESSION_ROOT", sessionRoot.toString());
        pb.environment().remove("HPVM_DIRECT");
        try {
            Process p = pb.start();
            p.getOutputStream().close();
            CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> {
                try {
                    return p.getErrorStream().readAllBytes();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            byte[] out = p.getInputStream().readAllBytes();
            int code = p.waitFor();
            return new Result(code, new String(out, StandardCharsets.UTF_8),
                new String(err.join(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /**
     * Runs {@code hpvm ARGS} as {@code bin/hpvm} does: the native client first; when it leaves the command to Java
     * (254) the Java path as {@link #cmd}, when it found no supervisor (253) the slow path after its line.
     */
    public static Result viaNative(Path sessionRoot, String... args) {
        Result n = nativeOnly(sessionRoot, args);
        if (n.code() == 254) {
            return cmd(sessionRoot, args);
        }
        if (n.code() == 253) {
            Result d = direct(sessionRoot, args);
            return new Result(d.code(), n.out() + d.out(), n.err() + d.err());
        }
        return n;
    }

    private static Result run(Path sessionRoot, boolean thin, String... args) {
        System.setProperty("hpvm.session.root", sessionRoot.toString());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code;
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
             PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            code = thin ? Main.run(o, e, args) : Main.execute(o, e, args);
        }
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }
}
