package io.hpvm.runtime.cli;

import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.swap.Detach;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code hpvm detach}. */
@Command(name = "detach", mixinStandardHelpOptions = true,
    description = {"Give a process taken over by 'hpvm attach' back its own code and end its session: every function "
        + "returns to version 0, its call sites and entry get their original bytes back (with the process's threads "
        + "stopped for a moment), hpvm's regions are unmapped once no thread can be in them (otherwise they stay "
        + "mapped and the line says which thread held them), and the background supervisor ends. The process runs "
        + "on as if hpvm had never been there.",
        "--keep-patches instead leaves every function's current version in place, its call sites and entry "
            + "branching straight to it, for a fix that should stay without hpvm; hpvm's code region stays mapped."},
    footer = {"", "Examples:", "  hpvm detach --pid 1234", "  hpvm detach --pid 1234 --keep-patches"})
final class DetachCommand extends SessionCommand {

    @Option(names = "--keep-patches", description = "Keep the current versions (called directly) instead of "
        + "returning to the original code.")
    boolean keepPatches;

    @Override
    public Integer call() throws Exception {
        SessionDir session = session();
        Detach.Result r = Detach.run(session, keepPatches);
        boolean inSupervisor = Invocation.current().session() != null;
        if (!inSupervisor) {
            session.delete(); // no supervisor ran this: nobody else will remove the session
        }
        if (json) {
            emit(result().put("pid", session.pid()).put("keep_patches", keepPatches).put("restored", r.restored())
                .put("call_sites", r.compaction().sites()).put("entries", r.compaction().entries())
                .put("pause_micros", r.compaction().pauseMicros()).put("unmapped", r.unmapped())
                .put("still_mapped", r.stillMapped()).put("unmap_pause_micros", r.pauseMicros()));
            return 0;
        }
        String how = keepPatches
            ? "the current version of every function stays in place, called directly"
            : r.restored() + " function" + (r.restored() == 1 ? "" : "s") + " back at version 0, original code "
                + "everywhere";
        out().printf("detached from process %d: %s (%d call sites and %d entries rewritten; threads stopped for "
                + "%.2f ms); %s%n", session.pid(), how, r.compaction().sites(), r.compaction().entries(),
            r.compaction().pauseMicros() / 1000.0, r.unmapped()
                ? String.format("hpvm's code unmapped (threads stopped for %.2f ms)", r.pauseMicros() / 1000.0)
                : "hpvm's code stays mapped: " + r.stillMapped());
        return 0;
    }
}
