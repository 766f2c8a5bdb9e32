package io.hpvm.runtime.cli;

import io.hpvm.runtime.Json;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Option;

/** What the commands that put new code into a worker share ({@code swap}, {@code patch}). */
abstract class PatchingCommand extends SessionCommand {

    @Option(names = "--no-unwind-info",
        description = "Do not register the patch's unwind information (.eh_frame) with the worker's unwinder. By "
            + "default it is, when the worker has one loaded (C++, libgcc_s): hpvm's agent thread in the worker calls "
            + "__register_frame_info (or, without one, a worker thread borrowed for a millisecond). Without it, a C++ exception thrown through the "
            + "new code terminates the worker.")
    boolean noUnwindInfo;

    @picocli.CommandLine.Mixin
    QuiesceOptions quiesce;

    /** The swap engine for this command's session and options. */
    SwapEngine engine() throws HpvmException {
        return quiesce.apply(new SwapEngine(session()).registerUnwindInfo(!noUnwindInfo)
            .unwindRegistrar(Invocation.current().registrar()));
    }

    /** A swap's result as JSON: what {@link SwapEngine#describe} says, field by field. */
    Json swapResult(SwapEngine.Result r, java.nio.file.Path object) {
        return result().put("function", r.function()).put("from_version", r.fromVersion())
            .put("to_version", r.toVersion()).put("address", io.hpvm.loader.Elf.hex(r.address()))
            .put("bytes", r.size()).put("object", object.toString()).put("micros", r.micros())
            .put("thunk_registers", Long.bitCount(r.preserved()))
            .put("unwind", r.unwind() == null || r.unwind().isEmpty() ? null : r.unwind())
            .put("quiesced", r.quiesced().isEmpty() ? null : r.quiesced()).put("already_applied", r.alreadyApplied())
            .put("warnings", SwapEngine.warnings(r));
    }

    /** Prints a swap's warnings on stderr. */
    void warn(SwapEngine.Result r) {
        for (String warning : SwapEngine.warnings(r)) {
            err().println("hpvm: warning: " + warning);
        }
    }
}
