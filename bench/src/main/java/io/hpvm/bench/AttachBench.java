package io.hpvm.bench;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Section 7: {@code hpvm attach} (issue 12). The 3,000-function program of the launch section, started without
 * hpvm on CPU 0, is taken over by {@code hpvm attach --json} on CPU 1: how long its thread was stopped (what the
 * supervisor measured, from the first {@code PTRACE_INTERRUPT} to the last resume) and how long the command took.
 */
final class AttachBench {

    private static final Pattern QUIESCED = Pattern.compile("quiesced after (\\d+) attempts?, longest pause "
        + "([0-9.]+) ms \\(stop ([0-9.]+), look ([0-9.]+), resume ([0-9.]+) ms\\); ([^;\"]*)");
    private static final Pattern PAUSED = Pattern.compile("\"paused_us\":(\\d+)");
    private static final Pattern DETACH = Pattern.compile("\"pause_micros\":(\\d+).*\"unmapped\":true.*"
        + "\"unmap_pause_micros\":(\\d+)");

    private final BenchMain bench;

    AttachBench(BenchMain bench) {
        this.bench = bench;
    }

    void run() throws Exception {
        Path many = new LaunchBench(bench).manyFunctions();
        int rounds = bench.quick ? 3 : 7;
        List<Double> paused = new ArrayList<>();
        List<Double> command = new ArrayList<>();
        List<Double> detach = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            List<String> worker = new ArrayList<>(BenchMain.onCpu(0));
            worker.addAll(List.of(many.toString(), "loop"));
            try (Child w = new Child(worker, bench.env, bench.root)) {
                Child.await(w.out, 0, l -> true, 30_000); // running: it printed its start time
                List<String> attach = new ArrayList<>(BenchMain.onCpu(1));
                attach.addAll(List.of(bench.hpvm.toString(), "attach", "--json", Long.toString(w.pid())));
                long t0 = System.nanoTime();
                try (Child a = new Child(attach, bench.env, bench.root)) {
                    if (a.waitFor(120_000) != 0) {
                        throw new IllegalStateException("hpvm attach failed: " + a.err.all());
                    }
                    command.add((System.nanoTime() - t0) / 1e6);
                    Matcher m = PAUSED.matcher(String.join("\n", a.err.all()));
                    if (!m.find()) {
                        throw new IllegalStateException("no paused_us in hpvm attach's output: " + a.err.all());
                    }
                    paused.add(Long.parseLong(m.group(1)) / 1000.0);
                }
                int seen = w.outSize();
                Child.await(w.out, seen, l -> true, 30_000); // still running after the attach
                List<String> d = new ArrayList<>(BenchMain.onCpu(1));
                d.addAll(List.of(bench.hpvm.toString(), "detach", "--json", "--pid", Long.toString(w.pid())));
                try (Child c = new Child(d, bench.env, bench.root)) {
                    if (c.waitFor(120_000) != 0) {
                        throw new IllegalStateException("hpvm detach failed: " + c.err.all() + c.out.all());
                    }
                    Matcher m = DETACH.matcher(String.join("\n", c.out.all()));
                    if (!m.find()) {
                        throw new IllegalStateException("hpvm detach did not unmap: " + c.out.all());
                    }
                    detach.add((Long.parseLong(m.group(1)) + Long.parseLong(m.group(2))) / 1000.0);
                }
                seen = w.outSize();
                Child.await(w.out, seen, l -> true, 30_000); // and after the detach
            }
        }
        Stats p = Stats.of(paused);
        bench.report.row("7. attach", "pause: hpvm attach of a 3,000-function program", p.format("%.2f") + " ms",
            "<= 50 ms", p.median() <= 50, "3,001 functions, 5,997 call sites, 3,001 entries; its one thread stopped "
            + "from the first interrupt to the resume (the rewrite is prepared while it runs)");
        Stats dp = Stats.of(detach);
        bench.report.row("7. attach", "pause: hpvm detach of the same program", dp.format("%.2f") + " ms",
            "<= 20 ms", dp.median() <= 20, "both stops: the one that writes the original bytes back, the one that "
            + "checks the threads and unmaps hpvm's regions");
        bench.report.row("7. attach", "`hpvm attach` end to end, same program", Stats.of(command).format("%.0f")
            + " ms", "", null, "two JVMs: the command and the background supervisor it starts");
        quiesce();
        bench.report.detail("""
            ### 7. Attach and quiesce

            bench's 3,000-function program (`many`, the launch section's) runs without hpvm on CPU 0, printing
            every 100 ms; `hpvm attach --json PID` takes it over from CPU 1, and the row gives the `paused_us` it
            reports; the program is checked to print on afterwards; then `hpvm detach --json` gives it back its
            code (the row adds the two pauses it reports), and the program is checked to print on again.
            The quiesce row runs bench/native/quiesce.c under `hpvm run` (eight threads calling work() and waiting
            a millisecond between calls) and swaps work() with `--quiesce --json`, alternately to the fixed and the
            original object, from 3 s after the worker is ready (the supervisor's warm-up is over then: the first
            swaps of a fresh supervisor run colder code); it gives the longest pause of the attempts each swap
            reports, and how that pause split
            into stopping the threads, looking at their stacks (unwinding them through `.eh_frame`) and resuming
            them.""");
    }

    /** `hpvm swap --quiesce` on an 8-thread worker: the longest stop of the world among each swap's attempts. */
    private void quiesce() throws Exception {
        Path src = bench.root.resolve("bench/native/quiesce.c");
        Path exe = bench.nativeDir.resolve("quiesce");
        Path fix = bench.nativeDir.resolve("quiesce_fix.o");
        Path same = bench.nativeDir.resolve("quiesce_same.o");
        bench.run(List.of("gcc", "-O2", "-pthread", "-o", exe.toString(), src.toString()));
        bench.run(List.of("gcc", "-O2", "-c", "-DFIX", "-o", fix.toString(), src.toString()));
        bench.run(List.of("gcc", "-O2", "-c", "-o", same.toString(), src.toString()));
        int rounds = bench.quick ? 5 : 15;
        List<Double> pauses = new ArrayList<>();
        List<Double> attempts = new ArrayList<>();
        List<List<Double>> phases = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        List<String> unwound = new ArrayList<>();
        List<String> cmd = new ArrayList<>(BenchMain.onCpu(1));
        cmd.addAll(List.of(bench.hpvm.toString(), "run", exe.toString()));
        try (Child w = new Child(cmd, bench.env, bench.root)) {
            int pid = bench.waitReady(w);
            bench.pinWorker(pid);
            Thread.sleep(3000); // the supervisor's warm-up after launch (StackWalk.warmUp): steady state is measured
            for (int r = 0; r < rounds; r++) {
                List<String> swap = new ArrayList<>(BenchMain.onCpu(1));
                swap.addAll(List.of(bench.hpvm.toString(), "swap", "--quiesce=5", "--json", "--pid",
                    Integer.toString(pid), "work", (r % 2 == 0 ? fix : same).toString()));
                try (Child c = new Child(swap, bench.env, bench.root)) {
                    if (c.waitFor(60_000) != 0) {
                        throw new IllegalStateException("hpvm swap --quiesce failed: " + c.err.all() + c.out.all());
                    }
                    // the reader of its stdout may not have taken its one line yet when it has exited
                    String line = Child.await(c.out, 0, l -> l.contains("quiesced"), 10_000);
                    Matcher m = QUIESCED.matcher(line);
                    if (!m.find()) {
                        throw new IllegalStateException("no quiesce report: " + c.out.all());
                    }
                    attempts.add(Double.parseDouble(m.group(1)));
                    pauses.add(Double.parseDouble(m.group(2)));
                    for (int i = 0; i < 3; i++) {
                        phases.get(i).add(Double.parseDouble(m.group(3 + i)));
                    }
                    if (!m.group(6).startsWith("every stack unwound")) {
                        unwound.add(m.group(6));
                    }
                }
            }
        }
        Stats p = Stats.of(pauses);
        bench.report.row("7. attach", "pause: one --quiesce attempt, 8-thread worker", p.format("%.2f") + " ms",
            "<= 1 ms", p.median() <= 1, "the longest attempt of each swap; attempts per swap "
            + Stats.of(attempts).format("%.0f") + "; its stop " + Stats.of(phases.get(0)).format("%.2f") + ", look "
            + Stats.of(phases.get(1)).format("%.2f") + ", resume " + Stats.of(phases.get(2)).format("%.2f") + " ms; "
            + (unwound.isEmpty() ? "every stack unwound (.eh_frame)" : "not unwound: " + unwound.get(0)));
    }
}
