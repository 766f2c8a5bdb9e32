package io.hpvm.runtime.supervisor;

import io.hpvm.runtime.session.CommandRequest;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.UnwindRegistrar;

/**
 * Runs an hpvm command on behalf of a thin client, in the supervisor's warm JVM. The command line itself lives in
 * {@code cli}, which hands the supervisor this when it starts it: the supervisor does not depend on the command line.
 */
@FunctionalInterface
public interface CommandRunner {

    /**
     * Runs {@code request} against {@code session}, with {@code registrar} registering unwind information directly
     * (the supervisor runs commands on the thread that may trace the worker), and returns what it printed.
     */
    CommandRequest.Answer run(CommandRequest request, SessionDir session, UnwindRegistrar registrar);
}
