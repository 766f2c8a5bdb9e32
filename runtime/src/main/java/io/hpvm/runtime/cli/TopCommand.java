package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.Json;
import io.hpvm.runtime.profile.Profile;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.SessionDir;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/** {@code hpvm top}. */
@Command(name = "top", mixinStandardHelpOptions = true,
    description = {"Show where the worker spends its time, by patchable function, refreshed every few seconds like "
        + "'perf top': each function's share of the samples, how much of it is dispatch (its stub, trampoline or "
        + "thunk: what 'hpvm compact' gives back), its state (routed or compacted) and version.",
        "The worker's threads are sampled with perf events (user-mode CPU clock, 1000 samples per second of each "
            + "thread's CPU time by default); nothing is injected and no thread is stopped. Needs what 'perf top "
            + "-p PID' needs: the worker's user (or root) and kernel.perf_event_paranoid at most 2.",
        "Runs in its own process, not in the supervisor; stop it with Ctrl-C."},
    footer = {"", "Examples:", "  hpvm top", "  hpvm top --once --delay 5        # one 5-second report, for scripts",
        "  hpvm top -n 3 --json"})
final class TopCommand extends SessionCommand {

    @Option(names = {"-d", "--delay"}, paramLabel = "SECONDS", defaultValue = "2",
        description = "Seconds between refreshes (default: ${DEFAULT-VALUE}).")
    double delay;

    @Option(names = {"-n", "--iterations"}, paramLabel = "N", defaultValue = "0",
        description = "Stop after N refreshes (default: run until interrupted).")
    int iterations;

    @Option(names = "--once", description = "One report after --delay seconds (the same as -n 1).")
    boolean once;

    @Option(names = "--limit", paramLabel = "ROWS", defaultValue = "20",
        description = "Functions shown per refresh (default: ${DEFAULT-VALUE}).")
    int limit;

    @Option(names = "--frequency", paramLabel = "HZ", defaultValue = "1000",
        description = "Samples per second of each thread's CPU time (default: ${DEFAULT-VALUE}).")
    int hz;

    @Override
    public Integer call() throws Exception {
        if (delay <= 0 || delay > 3600 || hz < 1 || hz > 100_000 || limit < 1 || iterations < 0) {
            throw new HpvmException(ExitCode.USAGE, "--delay must be in (0, 3600] seconds, --frequency in [1, "
                + "100000] Hz, --limit at least 1 and -n not negative");
        }
        SessionDir s = session();
        int rounds = once ? 1 : iterations;
        // Redraw in place only on a terminal; into a pipe or file each report follows the last.
        boolean redraw = System.console() != null && !json;
        try (Profile p = Profile.start(s, hz)) {
            for (int round = 1; rounds == 0 || round <= rounds; round++) {
                Profile.Report r = p.sampleFor(delay);
                if (json) {
                    emitJson(s, r);
                } else {
                    print(out(), s, r, redraw);
                }
                out().flush();
                if (s.processes().isEmpty()) {
                    throw new HpvmException(ExitCode.NO_SESSION, "the worker (pid " + s.pid() + ") has exited");
                }
            }
        }
        return 0;
    }

    private void print(PrintWriter o, SessionDir s, Profile.Report r, boolean redraw) {
        if (redraw) {
            o.print("\033[H\033[2J");
        }
        o.printf("hpvm top: pid %d, %d thread%s, %d samples in %.1f s at %d Hz per thread%s%n", s.pid(), r.threads(),
            r.threads() == 1 ? "" : "s", r.total(), r.seconds(), r.hz(),
            r.lost() > 0 ? " (" + r.lost() + " lost)" : "");
        o.printf("%7s %9s %9s  %-10s %7s  %s%n", "SHARE", "SAMPLES", "DISPATCH", "STATE", "VERSION", "FUNCTION");
        for (Profile.Row row : r.rows().subList(0, Math.min(limit, r.rows().size()))) {
            FunctionRecord fn = row.function();
            o.printf("%6.1f%% %9d %8.1f%%  %-10s %7s  %s%n", r.share(row), row.samples(),
                r.total() == 0 ? 0.0 : 100.0 * row.dispatch() / r.total(), fn.state(),
                "v" + fn.current(), fn.name());
        }
        o.printf("%6.1f%% %9d %9s  %-10s %7s  %s%n", r.total() == 0 ? 0.0 : 100.0 * r.outside() / r.total(),
            r.outside(), "", "", "", "(outside patchable functions: libraries, PLT)");
        if (!redraw) {
            o.println();
        }
    }

    private void emitJson(SessionDir s, Profile.Report r) {
        List<Json> rows = new ArrayList<>();
        for (Profile.Row row : r.rows().subList(0, Math.min(limit, r.rows().size()))) {
            FunctionRecord fn = row.function();
            rows.add(new Json().put("function", fn.name()).put("samples", row.samples())
                .put("dispatch_samples", row.dispatch()).put("share_percent", Math.round(r.share(row) * 10) / 10.0)
                .put("state", fn.state()).put("version", fn.current()));
        }
        emit(result().put("pid", s.pid()).put("threads", r.threads()).put("samples", r.total())
            .put("outside_samples", r.outside()).put("lost", r.lost()).put("seconds", r.seconds()).put("hz", r.hz())
            .put("functions", rows));
    }
}
