package io.hpvm.runtime.cli;

import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.session.SessionDir;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** What the commands that act on a running worker's session share: {@code --pid} and the output streams. */
abstract class SessionCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--pid", paramLabel = "PID",
        description = "The worker to act on (needed when several run under hpvm).")
    Integer pid;

    PrintWriter out() {
        return spec.commandLine().getOut();
    }

    PrintWriter err() {
        return spec.commandLine().getErr();
    }

    /** The session of {@code --pid}, or the only live one. */
    SessionDir session() throws HpvmException {
        SessionDir mine = Invocation.current().session();
        return mine != null ? mine : SessionDir.find(pid);
    }
}
