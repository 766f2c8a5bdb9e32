package io.hpvm.bench;

import io.hpvm.testing.Lines;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** A child process whose stdout and stderr are collected line by line, and whose stdin can be written. */
final class Child implements AutoCloseable {

    final Process process;
    final Lines out;
    final Lines err;
    private final OutputStream in;

    Child(List<String> cmd, Map<String, String> env, Path dir) {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        if (dir != null) {
            pb.directory(dir.toFile());
        }
        try {
            process = pb.start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start " + cmd + ": " + e.getMessage(), e);
        }
        in = process.getOutputStream();
        out = Lines.of(process.getInputStream());
        err = Lines.of(process.getErrorStream());
    }

    /** Waits for a line matching {@code p} at index >= {@code from} of {@code lines}. */
    static String await(Lines lines, int from, Predicate<String> p, long timeoutMs) {
        try {
            return lines.await(from, p, timeoutMs);
        } catch (IllegalStateException e) {
            throw new IllegalStateException(e.getMessage() + "; got: " + lines.all(), e);
        }
    }

    long pid() {
        return process.pid();
    }

    int outSize() {
        return out.size();
    }

    void send(String line) {
        try {
            in.write((line + "\n").getBytes(StandardCharsets.UTF_8));
            in.flush();
        } catch (IOException e) {
            throw new IllegalStateException("write to child: " + e.getMessage(), e);
        }
    }

    /** Sends a command and returns the first new stdout line. */
    String ask(String line, long timeoutMs) {
        int mark = outSize();
        send(line);
        return await(out, mark, l -> true, timeoutMs);
    }

    void closeStdin() {
        try {
            in.close();
        } catch (IOException ignored) {
            // already closed
        }
    }

    int waitFor(long timeoutMs) {
        try {
            if (!process.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
                throw new IllegalStateException("child did not exit; stderr: " + err.all());
            }
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
        return process.exitValue();
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroy();
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
            }
        }
    }
}
