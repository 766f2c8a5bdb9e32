package io.hpvm.runtime.cli;

import io.hpvm.loader.Elf;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;


/** {@code hpvm rollback}. */
@Command(name = "rollback", mixinStandardHelpOptions = true,
    description = {"Point FUNCTION back at an earlier version: the one before the current version, or the one "
        + "given with --to. Version 0 is the original code. Later versions are kept and can be returned to.",
        "When the current version came in a patch set (several functions swapped together), every member of the "
            + "set goes back (unless --to is given)."},
    footer = {"", "Examples:", "  hpvm rollback compute", "  hpvm rollback compute --to 0"})
final class RollbackCommand extends SessionCommand {

    @Option(names = "--to", paramLabel = "VERSION", description = "Version to return to (0 = original).")
    Integer to;

    @Parameters(index = "0", paramLabel = "FUNCTION", description = "Function to roll back.")
    String function;

    @Override
    public Integer call() throws Exception {
        for (SwapEngine.Result r : new SwapEngine(session()).rollbackAll(function, to)) {
            out().printf("rolled back %s: v%d -> v%d at %s in %.1f ms%n", r.function(), r.fromVersion(),
                r.toVersion(), Elf.hex(r.address()), r.micros() / 1000.0);
        }
        return 0;
    }
}
