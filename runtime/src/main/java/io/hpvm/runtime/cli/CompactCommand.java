package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.profile.Profile;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.swap.Compaction;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.util.List;

/** {@code hpvm compact}. */
@Command(name = "compact", mixinStandardHelpOptions = true,
    description = {"Make FUNCTION's calls native again: every call site hpvm rewrote to reach it through its "
        + "dispatcher stub (jmp [slot]) branches straight to its current version instead, and a redirected entry is "
        + "put back as it was (version 0) or jumps straight to the current version. The worker's threads are "
        + "stopped for the rewrite (about a millisecond for a few functions) and then run on.",
        "Without FUNCTION names, compacts what is hot and stable: the worker is sampled for --sample-for seconds "
            + "(perf events, as 'hpvm top' does) and each routed function with at least --min-share of the samples "
            + "that was not swapped or rolled back in the last --stable-for seconds is compacted.",
        "A later swap or rollback of a compacted function returns it to routed first (one more short stop), then "
            + "stores the slot as usual; --undo does that alone. 'hpvm ls' shows each function's state.",
        "Compaction changes the worker's code while it runs, so it needs the rights its supervisor has (ptrace)."},
    footer = {"", "Examples:", "  hpvm compact                  # what is hot and stable now", "  hpvm compact price",
        "  hpvm compact --all", "  hpvm compact --undo price"})
final class CompactCommand extends SessionCommand {

    @Option(names = "--all", description = "Every patchable function.")
    boolean all;

    @Option(names = "--undo", description = "Return the functions to routed (calls through the stub) instead.")
    boolean undo;

    @Option(names = "--sample-for", paramLabel = "SECONDS", defaultValue = "1",
        description = "Without names: how long to sample (default: ${DEFAULT-VALUE}).")
    double sampleFor;

    @Option(names = "--min-share", paramLabel = "PERCENT", defaultValue = "0.5",
        description = "Without names: the share of the samples that makes a function hot (default: "
            + "${DEFAULT-VALUE}).")
    double minShare;

    @Option(names = "--stable-for", paramLabel = "SECONDS", defaultValue = "30",
        description = "Without names: leave functions swapped or rolled back more recently than this (default: "
            + "${DEFAULT-VALUE}).")
    double stableFor;

    @Parameters(paramLabel = "FUNCTION", arity = "0..*", description = "Functions to compact.")
    List<String> functions = List.of();

    @Override
    public Integer call() throws Exception {
        if (all && !functions.isEmpty()) {
            throw new HpvmException(ExitCode.USAGE, "give either --all or FUNCTION names, not both");
        }
        boolean chosen = !all && functions.isEmpty();
        if (chosen && undo) {
            throw new HpvmException(ExitCode.USAGE, "name the FUNCTIONs to return to routed, or give --all");
        }
        if (sampleFor <= 0 || sampleFor > 600 || minShare < 0 || minShare > 100 || stableFor < 0) {
            throw new HpvmException(ExitCode.USAGE, "--sample-for must be in (0, 600] seconds, --min-share in "
                + "[0, 100] and --stable-for not negative");
        }
        SessionDir s = session();
        List<String> names = functions;
        String measured = "";
        if (chosen) {
            Profile.Report p = Profile.measure(s, sampleFor, Profile.DEFAULT_HZ);
            long now = System.currentTimeMillis();
            List<FunctionRecord> hot = p.hot(minShare, (long) (stableFor * 1000), now);
            int recent = p.candidates(minShare).size() - hot.size();
            measured = String.format("%d samples in %.1f s; %d routed function%s at %s%% or more%s", p.total(),
                p.seconds(), hot.size(), hot.size() == 1 ? "" : "s", fmt(minShare), recent == 0 ? ""
                    : " (" + recent + " more changed in the last " + fmt(stableFor) + " s: left routed)");
            if (hot.isEmpty()) {
                if (json) {
                    emit(result().put("state", "compacted").put("functions", 0).put("samples", p.total()));
                } else {
                    out().println("nothing to compact: " + measured + "; the most sampled: " + (p.rows().isEmpty()
                        ? "none" : String.join(", ", p.rows().subList(0, Math.min(3, p.rows().size())).stream()
                        .map(r -> String.format("%s %.1f%% (%s)", r.function().name(), p.share(r),
                            r.function().state())).toList())));
                }
                return 0;
            }
            names = hot.stream().map(FunctionRecord::name).toList();
        }
        Compaction.Result r = new SwapEngine(s).compact(names, all, !undo);
        if (json) {
            emit(result().put("state", undo ? "routed" : "compacted").put("functions", r.functions().size())
                .put("call_sites", r.sites()).put("entries", r.entries()).put("threads_stopped", r.threads())
                .put("pause_micros", r.pauseMicros()).put("attempts", r.attempts()));
        } else {
            out().println(Compaction.describe(r, !undo) + (measured.isEmpty() ? "" : "; chosen from " + measured));
        }
        return 0;
    }

    private static String fmt(double d) {
        return d == Math.rint(d) ? String.valueOf((long) d) : String.valueOf(d);
    }
}
