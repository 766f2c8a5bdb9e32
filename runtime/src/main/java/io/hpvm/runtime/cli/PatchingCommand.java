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

    @Option(names = "--quiesce", paramLabel = "SECONDS", arity = "0..1", preprocessor = AttachedValueOnly.class,
        description = "Swap only at a moment when no thread is inside the code being replaced (of any function of "
            + "the patch set): stop the threads, look at each one's instruction pointer and the return addresses on "
            + "its stack, and if one is there resume and try again (waits doubling up to 100 ms) for at most SECONDS "
            + "(--quiesce=SECONDS; default 5); then give up, changing nothing (exit 6), naming each thread and frame. "
            + "A function that never returns never quiesces.")
    Double quiesce;

    @Option(names = "--force", description = "With --quiesce: when the time is up, swap anyway (and say which "
        + "threads were still in the old code).")
    boolean force;

    /**
     * {@code --quiesce} takes its value only as {@code --quiesce=SECONDS}: {@code --quiesce FUNCTION} must leave the
     * function's name alone (picocli's way, from its documentation of {@code IParameterPreprocessor}).
     */
    static final class AttachedValueOnly implements picocli.CommandLine.IParameterPreprocessor {
        @Override
        public boolean preprocess(java.util.Stack<String> args, picocli.CommandLine.Model.CommandSpec spec,
                                  picocli.CommandLine.Model.ArgSpec arg, java.util.Map<String, Object> info) {
            if (" ".equals(info.get("separator"))) {
                args.push("5");
            }
            return false;
        }
    }

    /** The swap engine for this command's session and options. */
    SwapEngine engine() throws HpvmException {
        if (force && quiesce == null) {
            throw new HpvmException(io.hpvm.runtime.ExitCode.USAGE, "--force goes with --quiesce");
        }
        if (quiesce != null && !(quiesce >= 0 && quiesce <= 3600)) {
            throw new HpvmException(io.hpvm.runtime.ExitCode.USAGE, "--quiesce takes 0 to 3600 seconds");
        }
        SwapEngine e = new SwapEngine(session()).registerUnwindInfo(!noUnwindInfo)
            .unwindRegistrar(Invocation.current().registrar());
        return quiesce == null ? e : e.quiesce(Math.round(quiesce * 1000), force);
    }

    /** A swap's result as JSON: what {@link SwapEngine#describe} says, field by field. */
    Json swapResult(SwapEngine.Result r, java.nio.file.Path object) {
        return result().put("function", r.function()).put("from_version", r.fromVersion())
            .put("to_version", r.toVersion()).put("address", io.hpvm.loader.Elf.hex(r.address()))
            .put("bytes", r.size()).put("object", object.toString()).put("micros", r.micros())
            .put("thunk_registers", Long.bitCount(r.preserved()))
            .put("unwind", r.unwind() == null || r.unwind().isEmpty() ? null : r.unwind())
            .put("quiesced", r.quiesced().isEmpty() ? null : r.quiesced()).put("warnings", SwapEngine.warnings(r));
    }

    /** Prints a swap's warnings on stderr. */
    void warn(SwapEngine.Result r) {
        for (String warning : SwapEngine.warnings(r)) {
            err().println("hpvm: warning: " + warning);
        }
    }
}
