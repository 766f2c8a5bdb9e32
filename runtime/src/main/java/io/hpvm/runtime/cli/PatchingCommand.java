package io.hpvm.runtime.cli;

import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Option;

/** What the commands that put new code into a worker share ({@code swap}, {@code patch}). */
abstract class PatchingCommand extends SessionCommand {

    @Option(names = "--no-unwind-info",
        description = "Do not register the patch's unwind information (.eh_frame) with the worker's unwinder. By "
            + "default it is, when the worker has one loaded (C++, libgcc_s): the supervisor borrows one worker thread "
            + "for a millisecond or two to call __register_frame_info. Without it, a C++ exception thrown through the "
            + "new code terminates the worker.")
    boolean noUnwindInfo;

    /** The swap engine for this command's session and options. */
    SwapEngine engine() throws HpvmException {
        return new SwapEngine(session()).registerUnwindInfo(!noUnwindInfo)
            .unwindRegistrar(Invocation.current().registrar());
    }

    /** Prints a swap's warnings on stderr. */
    void warn(SwapEngine.Result r) {
        for (String warning : SwapEngine.warnings(r)) {
            err().println("hpvm: warning: " + warning);
        }
    }
}
