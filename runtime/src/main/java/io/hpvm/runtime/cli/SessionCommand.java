package io.hpvm.runtime.cli;

import io.hpvm.runtime.Json;
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

    @Option(names = "--json", description = "Print each result as one JSON object per line on stdout (errors too: "
        + "{\"ok\":false,...}), for scripts and fleet tools; the human format is the default.")
    boolean json;

    PrintWriter out() {
        return spec.commandLine().getOut();
    }

    PrintWriter err() {
        return spec.commandLine().getErr();
    }

    /** Prints {@code line} in the human format, or nothing under {@code --json}. */
    void say(String line) {
        if (!json) {
            out().println(line);
        }
    }

    /** Prints {@code result} under {@code --json}. */
    void emit(Json result) {
        out().println(result);
    }

    /** A result object: {@code {"ok":true,"command":NAME,...}}. */
    Json result() {
        return new Json().put("ok", true).put("command", spec.name());
    }

    /** The session of {@code --pid}, or the only live one. */
    SessionDir session() throws HpvmException {
        SessionDir mine = Invocation.current().session();
        return mine != null ? mine : SessionDir.find(pid);
    }
}
