package io.hpvm.runtime.cli;

import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;


/** {@code hpvm rollback}. */
@Command(name = "rollback", mixinStandardHelpOptions = true,
    description = {"Undo the last change to FUNCTION: return it to the version that ran before its current one was "
        + "installed. Changes stack up: after swap (v1), rollback (back to v0), swap (v2), a rollback returns to v0 "
        + "again, not to the v1 already taken out. Version 0 is the original code; every version is kept.",
        "--to N installs version N instead (itself a change a later plain rollback undoes).",
        "When the current version came in a patch set (several functions swapped together), every member of the "
            + "set goes back (unless --to is given)."},
    footer = {"", "Examples:", "  hpvm rollback compute", "  hpvm rollback compute --to 0"})
final class RollbackCommand extends SessionCommand {

    @Option(names = "--to", paramLabel = "VERSION", description = "Version to install (0 = original).")
    Integer to;

    @picocli.CommandLine.Mixin
    QuiesceOptions quiesce;

    @Parameters(index = "0", paramLabel = "FUNCTION", description = "Function to roll back.")
    String function;

    @Override
    public Integer call() throws Exception {
        for (SwapEngine.Result r : quiesce.apply(new SwapEngine(session())).rollbackAll(function, to)) {
            if (json) {
                emit(result().put("function", r.function()).put("from_version", r.fromVersion())
                    .put("to_version", r.toVersion()).put("returned_to", r.note())
                    .put("address", io.hpvm.loader.Elf.hex(r.address())).put("micros", r.micros())
                    .put("quiesced", r.quiesced().isEmpty() ? null : r.quiesced()));
            } else {
                out().println(SwapEngine.describeRollback(r));
            }
        }
        return 0;
    }
}
