package io.hpvm.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Section 6 of the bench: compaction (issue 11). A real program's cost routed and compacted (the Lua interpreter),
 * the pause of compacting every function of Lua and of a 16,000-site program, the pause a swap of a compacted
 * function adds, and what sampling for hot functions costs the worker.
 */
final class CompactionBench {

    private static final Pattern PAUSE = Pattern.compile("\"call_sites\":(\\d+),.*\"threads_stopped\":(\\d+),"
        + "\"pause_micros\":(\\d+)");
    private static final Pattern ROUTED = Pattern.compile("first routed 1 function \\(price\\): .* stopped for "
        + "([0-9.]+) ms");

    private final BenchMain bench;
    /** CPU 0 for the measured worker, CPU 1 for everything else (the supervisor's JVM, hpvm commands). */
    private final List<String> pin = BenchMain.onCpu(0);
    private final List<String> other = BenchMain.onCpu(1);

    CompactionBench(BenchMain bench) {
        this.bench = bench;
    }

    void run() throws Exception {
        lua();
        manySites();
        swapOfCompacted();
        placement();
        samplingCost();
        bench.report.detail("""
            ### 6. Compaction

            `hpvm compact` rewrites a function's call sites (and its redirected entry) to branch straight to its
            current version, with every thread of the worker stopped through ptrace (`runtime/.../swap/Compaction`).
            The Lua rows run `examples/lua/busy.lua` (sorting, formatting, pattern matching, closures: hundreds of
            the interpreter's C functions) natively, under `hpvm run`, and under `hpvm run` after `hpvm compact
            --all`, alternately; the interpreter runs on CPU 0, and the supervisor and every hpvm command on CPU 1
            (`taskset -a -p` moves the worker once it is ready); the script times itself with os.clock (best of 3
            in-process).
            Pauses are what `hpvm compact --json` reports (first thread stopped to last resumed, measured by the
            supervisor). The sampling rows run dispatch.c's mixed loop under hpvm with `hpvm top` sampling it at
            1 Hz (the control), 100 Hz (`--compact=auto`'s rate) and 1 kHz (`hpvm top`'s), `hpvm top` pinned to the
            other CPU.

            The placement row asks whether placing a new version beside its callers' and callees' versions would
            pay (issue 11's "code rearrangement"): the handler's 64 hot versions each on a page of its own, ~40 KB
            apart, against all 64 on one page. hpvm does not rearrange: when this was built (2026-12-01) the row
            was 1.001 (0.986-1.032, n=5), no gain; the arena is bump-allocated, so versions swapped one after
            another (or together by `hpvm patch`) sit side by side anyway, and they end up scattered only when
            large patches were swapped between them.""");
    }

    // Lua: routed and compacted against native; the pause of compacting every function.
    private void lua() throws Exception {
        Path out = bench.root.resolve("bench/target/lua");
        Process p = new ProcessBuilder("bash", bench.root.resolve("examples/lua/build-lua.sh").toString(),
            out.toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        if (p.waitFor() != 0) {
            bench.report.row("6. compaction", "Lua workload", "not measured", "<= 1.03x", null,
                "examples/lua/build-lua.sh failed: " + log.strip().lines().reduce((a, b) -> b).orElse(""));
            return;
        }
        Path lua = out.resolve("lua");
        String script = bench.root.resolve("examples/lua/busy.lua").toString();
        int rounds = bench.quick ? 3 : 7;
        List<Double> routed = new ArrayList<>();
        List<Double> compacted = new ArrayList<>();
        List<Double> pauses = new ArrayList<>();
        String sites = "?";
        for (int r = 0; r < rounds; r++) {
            double a = luaRun(lua, script, false, false, null);
            double b = luaRun(lua, script, true, false, null);
            String[] pause = new String[1];
            double c = luaRun(lua, script, true, true, pause);
            routed.add(b / a);
            compacted.add(c / a);
            Matcher m = PAUSE.matcher(pause[0]);
            if (m.find()) {
                pauses.add(Double.parseDouble(m.group(3)) / 1000);
                sites = m.group(1);
            }
        }
        bench.report.row("6. compaction", "Lua workload (busy.lua), routed", Stats.of(routed).format("%.3f") + "x",
            "", null, "routed / native: every call to a routed function goes through its stub");
        Stats comp = Stats.of(compacted);
        bench.report.row("6. compaction", "Lua workload (busy.lua), compacted", comp.format("%.3f") + "x",
            "<= 1.03x", comp.median() <= 1.03, "compacted / native, after `hpvm compact --all`");
        Stats ps = Stats.of(pauses);
        bench.report.row("6. compaction", "pause: compacting every Lua function (" + sites + " call sites)",
            ps.format("%.2f") + " ms", "<= 2 ms", ps.median() <= 2, "one stop of the world, 1 thread");
    }

    private double luaRun(Path lua, String script, boolean underHpvm, boolean compact, String[] pause) {
        List<String> cmd = new ArrayList<>(underHpvm ? other : pin);
        if (underHpvm) {
            cmd.addAll(List.of(bench.hpvm.toString(), "run"));
        }
        cmd.addAll(List.of(lua.toString(), script, bench.quick ? "10" : "20"));
        try (Child c = new Child(cmd, bench.env, bench.root)) {
            if (underHpvm) {
                int pid = bench.waitReady(c);
                bench.pinWorker(pid);
                if (compact) {
                    pause[0] = hpvm("compact", "--all", "--json", "--pid", Integer.toString(pid));
                }
            }
            return go(c);
        }
    }

    // A 16,000-site program: the pause of compacting all of it.
    private void manySites() throws Exception {
        int n = 8000; // f_i calls f_{i+1} and f_{i+2}: two call sites per function
        StringBuilder c = new StringBuilder("#include <stdio.h>\n#include <unistd.h>\n");
        LaunchBench.chain(c, "g", n);
        c.append("int main(void) { for (long r = 0; ; r++) { long s = 0; for (int i = 0; i < 100; i++) "
            + "s += g0(3 + i % 5); printf(\"%ld\\n\", s); fflush(stdout); usleep(20000); } }\n");
        Path src = bench.nativeDir.resolve("sites16k.c");
        Files.writeString(src, c);
        Path exe = bench.nativeDir.resolve("sites16k");
        bench.run(List.of("gcc", "-O1", "-o", exe.toString(), src.toString()));
        List<Double> pauses = new ArrayList<>();
        String sites = "?";
        try (Child w = new Child(List.of(bench.hpvm.toString(), "run", exe.toString()), bench.env,
            bench.root)) {
            String pid = Integer.toString(bench.waitReady(w));
            for (int r = 0; r < (bench.quick ? 3 : 7); r++) {
                Matcher m = PAUSE.matcher(hpvm("compact", "--all", "--json", "--pid", pid));
                if (m.find()) {
                    pauses.add(Double.parseDouble(m.group(3)) / 1000);
                    sites = m.group(1);
                }
                hpvm("compact", "--undo", "--all", "--pid", pid);
            }
        }
        Stats ps = Stats.of(pauses);
        bench.report.row("6. compaction", "pause: compacting a " + sites + "-site program (8,000 functions)",
            ps.format("%.2f") + " ms", "<= 5 ms", ps.median() <= 5, "one stop of the world, 1 thread; "
            + "`compact --all`, then `--undo --all`, repeated");
    }

    // The pause a swap of a compacted function adds (it is returned to routed first).
    private void swapOfCompacted() {
        List<Double> pauses = new ArrayList<>();
        try (Child w = new Child(List.of(bench.hpvm.toString(), "run",
            bench.nativeDir.resolve("counter").toString()), bench.env, bench.root)) {
            String pid = Integer.toString(bench.waitReady(w));
            for (int r = 0; r < (bench.quick ? 5 : 15); r++) {
                hpvm("compact", "price", "--pid", pid);
                String out = hpvm("swap", "price", bench.nativeDir.resolve("price_fix.o").toString(), "--pid", pid);
                Matcher m = ROUTED.matcher(out);
                if (m.find()) {
                    pauses.add(Double.parseDouble(m.group(1)));
                }
                hpvm("rollback", "price", "--pid", pid);
            }
        }
        Stats ps = Stats.of(pauses);
        bench.report.row("6. compaction", "pause: swapping a compacted function", ps.format("%.2f") + " ms",
            "<= 1 ms", ps.median() <= 1, "the stop that returns it to routed before the slot store (examples/counter)");
    }

    /**
     * Whether where versions sit in the arena matters (issue 11's "code rearrangement"): bench/native/placement.c's
     * handler calls 64 small functions; each is swapped for a copy of itself and then everything is compacted, so
     * every call goes straight to a version. Packed: the 64 swaps follow each other, so the arena's bump allocator
     * puts the versions side by side (64 bytes apart, one page). Scattered: a 40,000-byte function is swapped before
     * each, so every version sits on a page of its own, ~40 KB from the next. Same worker, same code, same calls.
     */
    private void placement() throws Exception {
        Path src = bench.root.resolve("bench/native/placement.c");
        Path versions = bench.nativeDir.resolve("placement_versions.o");
        Path pad = bench.nativeDir.resolve("placement_pad.o");
        bench.run(List.of("gcc", "-O2", "-o", bench.nativeDir.resolve("placement").toString(), src.toString()));
        bench.run(List.of("gcc", "-O2", "-c", "-ffunction-sections", "-DVERSIONS", "-o", versions.toString(),
            src.toString()));
        bench.run(List.of("gcc", "-O2", "-c", "-DPAD", "-o", pad.toString(), src.toString()));
        int rounds = bench.quick ? 1 : 5;
        List<Double> ratios = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            double packed = placementRun(versions, null);
            double scattered = placementRun(versions, pad);
            ratios.add(scattered / packed);
        }
        Stats s = Stats.of(ratios);
        bench.report.row("6. compaction", "64 hot versions scattered across the arena / packed", s.format("%.3f")
            + "x", "", null, "bench/native/placement.c, compacted; above 1 would be the gain of placing versions "
            + "together (see the text)");
    }

    /** One placement worker: swaps its 64 functions (each after {@code pad}, if given), compacts, times. */
    private double placementRun(Path versions, Path pad) {
        List<String> cmd = new ArrayList<>(other);
        cmd.addAll(List.of(bench.hpvm.toString(), "run", bench.nativeDir.resolve("placement").toString(),
            bench.quick ? "300000" : "1000000"));
        try (Child c = new Child(cmd, bench.env, bench.root)) {
            int pid = bench.waitReady(c);
            bench.pinWorker(pid);
            String p = Integer.toString(pid);
            for (int i = 10; i < 90; i++) {
                if (i % 10 > 7) {
                    continue; // f10-f17, f20-f27, ..., f80-f87
                }
                if (pad != null) {
                    hpvm("swap", "--pid", p, "pad", pad.toString());
                }
                hpvm("swap", "--pid", p, "f" + i, versions.toString());
            }
            hpvm("compact", "--all", "--pid", p);
            return go(c);
        }
    }

    /**
     * What sampling costs the worker. Three runs per round: `hpvm top` sampling at 1 Hz (its JVM redraws and polls just
     * the same on CPU 1: the control for what a busy neighbour CPU costs on this VM), at 100 Hz (what
     * `--compact=auto` samples at) and at 1 kHz (`hpvm top`'s and `hpvm compact`'s default). The cost of each rate is
     * its run against the 1 Hz run of the same round.
     */
    private void samplingCost() {
        int rounds = bench.quick ? 3 : 9;
        List<Double> auto = new ArrayList<>();
        List<Double> top = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            double control = mixedRun(1);
            auto.add(mixedRun(100) / control);
            top.add(mixedRun(1000) / control);
        }
        Stats a = Stats.of(auto);
        Stats t = Stats.of(top);
        double cost = (a.median() - 1) * 100;
        bench.report.row("6. compaction", "cost of --compact=auto's sampling (100 Hz per thread)",
            String.format("%+.2f%%", cost), "<= 1%", cost <= 1, "dispatch.c mixed under hpvm, sampled at 100 Hz / at "
            + "1 Hz, " + a.format("%.4f") + "x; it samples half of each period (5 s in 10 by default)");
        bench.report.row("6. compaction", "cost of hpvm top's sampling (1 kHz per thread)",
            String.format("%+.2f%%", (t.median() - 1) * 100), "", null, "the same, at 1 kHz / at 1 Hz, "
            + t.format("%.4f") + "x; while `hpvm top` or `hpvm compact` without names samples");
    }

    /** dispatch.c mixed under hpvm, sampled by `hpvm top` at {@code hz} (0: no hpvm top). */
    private double mixedRun(int hz) {
        List<String> cmd = new ArrayList<>(other);
        cmd.addAll(List.of(bench.hpvm.toString(), "run", bench.nativeDir.resolve("dispatch").toString(),
            "mixed", bench.quick ? "300000" : "1000000"));
        try (Child c = new Child(cmd, bench.env, bench.root)) {
            int pid = bench.waitReady(c);
            bench.pinWorker(pid);
            Child top = null;
            try {
                if (hz > 0) {
                    List<String> t = new ArrayList<>(other);
                    t.addAll(List.of(bench.hpvm.toString(), "top", "--delay", "0.5", "--frequency",
                        Integer.toString(hz), "--pid", Integer.toString(pid)));
                    top = new Child(t, bench.env, bench.root);
                    // Three reports in: sampling runs, and hpvm top's own JVM has finished compiling its loop.
                    int at = -1;
                    for (int k = 0; k < 3; k++) {
                        at = top.out.awaitIndex(at + 1, l -> l.startsWith("hpvm top:"), 60_000);
                    }
                }
                return go(c);
            } finally {
                if (top != null) {
                    top.close();
                }
            }
        }
    }

    /** Lets the machine settle, starts the worker's timed loop and returns what it measured ("ns_per_... N"). */
    private static double go(Child c) {
        sleep(300);
        c.send("go");
        c.closeStdin();
        String line = Child.await(c.out, 0, l -> l.startsWith("ns_per_"), 300_000);
        c.waitFor(60_000);
        return Double.parseDouble(line.split(" ")[1]);
    }

    private String hpvm(String... args) {
        List<String> cmd = new ArrayList<>(List.of(bench.hpvm.toString()));
        cmd.addAll(List.of(args));
        try (Child k = new Child(cmd, bench.env, bench.root)) {
            if (k.waitFor(120_000) != 0) {
                throw new IllegalStateException(String.join(" ", cmd) + " failed: " + k.err.tail(5));
            }
            return Child.await(k.out, 0, l -> true, 10_000); // every command here prints one line
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
