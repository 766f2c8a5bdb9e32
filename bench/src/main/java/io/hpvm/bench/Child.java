package io.hpvm.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** A child process whose stdout and stderr are collected line by line, and whose stdin can be written. */
final class Child implements AutoCloseable {

    final Process process;
    final List<String> out = new ArrayList<>();
    final List<String> err = new ArrayList<>();
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
        collect(process.getInputStream(), out);
        collect(process.getErrorStream(), err);
    }

    private static void collect(InputStream s, List<String> sink) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(s, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (sink) {
                        sink.add(line);
                        sink.notifyAll();
                    }
                }
            } catch (IOException ignored) {
                // ended
            }
        });
        t.setDaemon(true);
        t.start();
    }

    /** Waits for a line matching {@code p} at index >= {@code from} of {@code sink}. */
    static String await(List<String> sink, int from, Predicate<String> p, long timeoutMs) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        synchronized (sink) {
            int i = from;
            while (true) {
                for (; i < sink.size(); i++) {
                    if (p.test(sink.get(i))) {
                        return sink.get(i);
                    }
                }
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    throw new IllegalStateException("timed out waiting for output; got: " + sink);
                }
                try {
                    sink.wait(left);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    int outSize() {
        synchronized (out) {
            return out.size();
        }
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
                throw new IllegalStateException("child did not exit; stderr: " + err);
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
