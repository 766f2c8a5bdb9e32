package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Option;

/** {@code --quiesce[=SECONDS]} and {@code --force}, shared by the commands that store slots (swap, patch, rollback). */
final class QuiesceOptions {

    @Option(names = "--quiesce", paramLabel = "SECONDS", arity = "0..1", preprocessor = AttachedValueOnly.class,
        description = "Store the slots only at a moment when no thread is inside the code being replaced (of any "
            + "function of the patch set): stop the threads, unwind each one's stack through the call frame "
            + "information (.eh_frame) of the program, its libraries and the patches, and if a frame is there "
            + "resume and try again (waits doubling up to 100 ms) for at "
            + "most SECONDS (--quiesce=SECONDS; default 5); then give up, changing nothing (exit 6), naming each "
            + "thread and frame. A function that never returns never quiesces.")
    Double quiesce;

    @Option(names = "--force", description = "With --quiesce: when the time is up, store anyway (and say which "
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

    /** {@code engine}, told to quiesce when asked. */
    SwapEngine apply(SwapEngine engine) throws HpvmException {
        if (force && quiesce == null) {
            throw new HpvmException(ExitCode.USAGE, "--force goes with --quiesce");
        }
        if (quiesce == null) {
            return engine;
        }
        if (!(quiesce >= 0 && quiesce <= 3600)) {
            throw new HpvmException(ExitCode.USAGE, "--quiesce takes 0 to 3600 seconds");
        }
        return engine.quiesce(Math.round(quiesce * 1000), force);
    }
}
