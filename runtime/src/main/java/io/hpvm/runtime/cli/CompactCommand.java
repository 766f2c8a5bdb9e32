package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
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
        "A later swap or rollback of a compacted function returns it to routed first (one more short stop), then "
            + "stores the slot as usual; --undo does that alone. 'hpvm ls' shows each function's state.",
        "Compaction changes the worker's code while it runs, so it needs the rights its supervisor has (ptrace)."},
    footer = {"", "Examples:", "  hpvm compact price", "  hpvm compact --all", "  hpvm compact --undo price"})
final class CompactCommand extends SessionCommand {

    @Option(names = "--all", description = "Every patchable function.")
    boolean all;

    @Option(names = "--undo", description = "Return the functions to routed (calls through the stub) instead.")
    boolean undo;

    @Parameters(paramLabel = "FUNCTION", arity = "0..*", description = "Functions to compact.")
    List<String> functions = List.of();

    @Override
    public Integer call() throws Exception {
        if (all == !functions.isEmpty()) {
            throw new HpvmException(ExitCode.USAGE, all ? "give either --all or FUNCTION names, not both"
                : "name the FUNCTIONs to compact, or give --all");
        }
        Compaction.Result r = new SwapEngine(session()).compact(functions, all, !undo);
        if (json) {
            emit(result().put("state", undo ? "routed" : "compacted").put("functions", r.functions().size())
                .put("call_sites", r.sites()).put("entries", r.entries()).put("threads_stopped", r.threads())
                .put("pause_micros", r.pauseMicros()).put("attempts", r.attempts()));
        } else {
            out().println(Compaction.describe(r, !undo));
        }
        return 0;
    }
}
