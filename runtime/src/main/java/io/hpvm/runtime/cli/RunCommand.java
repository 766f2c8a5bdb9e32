package io.hpvm.runtime.cli;

import io.hpvm.runtime.supervisor.Supervisor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code hpvm run}. */
@Command(name = "run", mixinStandardHelpOptions = true,
    description = {"Start PROGRAM under hpvm with every call to its functions routed through hot-swappable slots.",
        "hpvm stays in the foreground as the program's parent: the program keeps stdin/stdout/stderr, SIGINT, "
            + "SIGTERM, SIGHUP and SIGQUIT are forwarded to it, and hpvm exits with its exit status."},
    footer = {"", "Example:", "  hpvm run ./server --port 8080"})
final class RunCommand implements Callable<Integer> {

    @Mixin
    SupervisorOptions supervisor;

    @Option(names = "--no-agent", description = "Do not start hpvm's agent thread (hpvm-agent) in a program that "
        + "can unwind (C++, libgcc_s): registering a patch's unwind information then pauses one of its threads "
        + "for about a millisecond instead.")
    boolean noAgent;

    @Parameters(index = "0", paramLabel = "PROGRAM", description = "Executable (x86-64 ELF) to run.")
    String program;

    @Parameters(index = "1..*", paramLabel = "ARG", description = "Arguments passed to PROGRAM unchanged.")
    List<String> args = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        List<String> argv = new ArrayList<>();
        argv.add(program);
        argv.addAll(args);
        return new Supervisor(supervisor.toOptions(!noAgent), System.err).run(argv);
    }
}
