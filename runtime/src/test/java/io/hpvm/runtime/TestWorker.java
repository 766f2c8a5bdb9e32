package io.hpvm.runtime;

import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.testing.Lines;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A real worker under a real {@code hpvm run} supervisor, started as a separate JVM exactly like {@code bin/hpvm
 * run} does (same main class, same JVM flags), with its stdout and stderr collected line by line.
 */
public final class TestWorker implements AutoCloseable {

    /** The ready line, human ("... (pid N) ready in") or {@code --json} ({"event":"ready",...,"pid":N,...}). */
    private static final Pattern READY = Pattern.compile("\\(pid (\\d+)\\) ready in|^\\{\"event\":\"ready\".*\"pid\":(\\d+)");

    private final Process process;
    private final Lines out;
    private final Lines err;
    private int pid = -1;
    private int supervisorPid = -1;

    private TestWorker(Process process) {
        this.process = process;
        this.out = Lines.of(process.getInputStream());
        this.err = Lines.of(process.getErrorStream());
    }

    /** Starts {@code hpvm run [runOptions] exe args} and waits for its ready line. */
    public static TestWorker start(Path sessionRoot, List<String> runOptions, Path exe, String... args) {
        TestWorker w = launch(sessionRoot, runOptions, exe, args);
        w.awaitReady();
        return w;
    }

    /**
     * Starts {@code hpvm run} under a shell that outlives it, for tests that kill the supervisor: Java stops reading
     * a child's output once the child exits (and the worker, writing on, would die of SIGPIPE), so the shell keeps
     * the pipe read until {@link #close()}.
     */
    public static TestWorker startOrphanable(Path sessionRoot, Path exe, String... args) {
        TestWorker w = launch(sessionRoot, List.of(), exe, true, Map.of(), args);
        String line = w.awaitStderr(l -> l.startsWith("supervisor pid "), Duration.ofSeconds(30));
        w.supervisorPid = Integer.parseInt(line.substring("supervisor pid ".length()).trim());
        w.awaitReady();
        return w;
    }

    /** Starts {@code hpvm run} without waiting (for tests of start-up failures). */
    public static TestWorker launch(Path sessionRoot, List<String> runOptions, Path exe, String... args) {
        return launch(sessionRoot, runOptions, exe, false, Map.of(), args);
    }

    /** Starts {@code hpvm run [runOptions] exe args} with {@code env} added to its environment; waits until ready. */
    public static TestWorker start(Path sessionRoot, Map<String, String> env, List<String> runOptions, Path exe,
                                   String... args) {
        TestWorker w = launch(sessionRoot, runOptions, exe, false, env, args);
        w.awaitReady();
        return w;
    }

    private static TestWorker launch(Path sessionRoot, List<String> runOptions, Path exe, boolean orphanable,
                                     Map<String, String> env, String... args) {
        List<String> cmd = new ArrayList<>();
        if (orphanable) {
            cmd.addAll(List.of("/bin/sh", "-c", "\"$@\" & echo \"supervisor pid $!\" >&2; wait; exec sleep 3600",
                "sh"));
        }
        cmd.addAll(hpvmCommand("run"));
        cmd.addAll(runOptions);
        cmd.add(exe.toString());
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("HPVM_SESSION_ROOT", sessionRoot.toString());
        pb.environment().putAll(env);
        try {
            TestWorker w = new TestWorker(pb.start());
            w.supervisorPid = orphanable ? -1 : (int) w.process.pid();
            return w;
        } catch (IOException e) {
            throw new AssertionError("cannot start hpvm run: " + e, e);
        }
    }

    /**
     * {@code hpvm ARGS} as a separate JVM, started exactly like {@code bin/hpvm} does (same main class, this test
     * JVM's classpath and module flags).
     */
    public static List<String> hpvmCommand(String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (a.startsWith("--add-") || a.startsWith("-Dchronicle")) {
                cmd.add(a);
            }
        }
        cmd.add("-XX:TieredStopAtLevel=1");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("io.hpvm.runtime.cli.Main");
        cmd.addAll(List.of(args));
        return cmd;
    }

    /** Starts {@code exe args} without hpvm (for {@code hpvm attach}); this test is its parent. */
    public static TestWorker startNative(Path exe, String... args) {
        List<String> cmd = new ArrayList<>(List.of(exe.toString()));
        cmd.addAll(List.of(args));
        try {
            TestWorker w = new TestWorker(new ProcessBuilder(cmd).start());
            w.pid = (int) w.process.pid();
            return w;
        } catch (IOException e) {
            throw new AssertionError("cannot start " + exe + ": " + e, e);
        }
    }

    private void awaitReady() {
        String line = await(err, 0, l -> READY.matcher(l).find() || l.startsWith("hpvm: error"),
            Duration.ofSeconds(30));
        Matcher m = READY.matcher(line);
        if (!m.find()) {
            throw new AssertionError("hpvm run failed: " + line + "\n" + this);
        }
        pid = Integer.parseInt(m.group(1) != null ? m.group(1) : m.group(2));
    }

    /** The worker's pid (not the supervisor's). */
    public int pid() {
        return pid;
    }

    /** The process Java started: {@code hpvm run}, or the shell around it ({@link #startOrphanable}). */
    public Process supervisor() {
        return process;
    }

    /** The pid of {@code hpvm run}. */
    public int supervisorPid() {
        return supervisorPid;
    }

    /** Number of stdout lines so far: pass it to {@link #awaitLine} to look only at later lines. */
    public int mark() {
        return out.size();
    }

    /** Waits for a stdout line at index >= {@code from} matching {@code p}; returns it. */
    public String awaitLine(int from, Predicate<String> p, Duration timeout) {
        return await(out, from, p, timeout);
    }

    /** Waits for a line of hpvm run's stderr matching {@code p}; returns it. */
    public String awaitStderr(Predicate<String> p, Duration timeout) {
        return await(err, 0, p, timeout);
    }

    /** Waits for a stdout line at index >= {@code from} matching {@code p}; returns its index. */
    public int awaitLineIndex(int from, Predicate<String> p, Duration timeout) {
        try {
            return out.awaitIndex(from, p, timeout.toMillis());
        } catch (IllegalStateException e) {
            throw new AssertionError(e.getMessage() + "\n" + this, e);
        }
    }

    /** Waits until stdout has at least {@code count} lines past {@code from}; returns those lines. */
    public List<String> awaitLines(int from, int count, Duration timeout) {
        try {
            return out.await(from, count, timeout.toMillis());
        } catch (IllegalStateException e) {
            throw new AssertionError(e.getMessage() + "\n" + this, e);
        }
    }

    private String await(Lines lines, int from, Predicate<String> p, Duration timeout) {
        try {
            return lines.await(from, p, timeout.toMillis());
        } catch (IllegalStateException e) {
            throw new AssertionError(e.getMessage() + "\n" + this, e);
        }
    }

    /** Waits for the supervisor to exit and returns its exit status. */
    public int waitExit(Duration timeout) {
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError("hpvm run did not exit in " + timeout + "\n" + this);
            }
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
        return process.exitValue();
    }

    public String stderr() {
        return String.join("\n", err.all());
    }

    public String stdout() {
        return String.join("\n", out.all());
    }

    @Override
    public String toString() {
        return "--- worker stdout (last lines)\n" + out.tail(30) + "\n--- hpvm run stderr\n" + err.tail(30);
    }

    @Override
    public void close() {
        if (supervisorPid > 0 && supervisorPid != process.pid() && ProcFs.state(supervisorPid) != '?') {
            LibC.INSTANCE.kill(supervisorPid, LibC.SIGTERM);
        }
        if (process.isAlive()) {
            process.destroy(); // SIGTERM, forwarded to the worker
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
            }
        }
        if (pid > 0 && ProcFs.state(pid) != '?') {
            try {
                LibC.INSTANCE.kill(pid, LibC.SIGKILL);
            } catch (RuntimeException ignored) {
                // already gone
            }
        }
    }
}
