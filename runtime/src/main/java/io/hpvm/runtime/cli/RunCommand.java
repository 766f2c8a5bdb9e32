package io.hpvm.runtime.cli;

import io.hpvm.runtime.supervisor.Supervisor;
import picocli.CommandLine.Command;
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

    @Option(names = {"-q", "--quiet"}, description = "Do not print the ready line on stderr.")
    boolean quiet;

    @Option(names = "--json", description = "Print the ready line as one JSON object on stderr (stdout is the "
        + "program's).")
    boolean json;

    @Option(names = "--timings", description = "Print how long each launch phase took (stderr).")
    boolean timings;

    @Option(names = "--no-entry-redirect", description = "Route only the rewritten direct call sites; leave every "
        + "function's entry as it is (calls through pointers then keep reaching the original code).")
    boolean noEntryRedirect;

    @Option(names = "--no-agent", description = "Do not start hpvm's agent thread (hpvm-agent) in a program that "
        + "can unwind (C++, libgcc_s): registering a patch's unwind information then pauses one of its threads "
        + "for about a millisecond instead.")
    boolean noAgent;

    @Option(names = "--cflags", paramLabel = "FLAGS", defaultValue = "",
        description = "Compiler flags the program was built with; 'hpvm swap FN file.c' compiles with them.")
    String cflags;

    @Option(names = "--arena-size", paramLabel = "BYTES", defaultValue = "32M",
        description = "Space reserved for patch code (sparse until used; default ${DEFAULT-VALUE}). Suffixes K, M.")
    String arenaSize;

    @Parameters(index = "0", paramLabel = "PROGRAM", description = "Executable (x86-64 ELF) to run.")
    String program;

    @Parameters(index = "1..*", paramLabel = "ARG", description = "Arguments passed to PROGRAM unchanged.")
    List<String> args = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        List<String> argv = new ArrayList<>();
        argv.add(program);
        argv.addAll(args);
        return new Supervisor(new Supervisor.Options(quiet, Sizes.parse(arenaSize, "--arena-size"), timings,
            !noEntryRedirect, cflags, !noAgent, json, Main::serve), System.err)
            .run(argv);
    }
}
