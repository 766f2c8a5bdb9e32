package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.supervisor.Supervisor;
import picocli.CommandLine.Option;

/** The options {@code hpvm run} and {@code hpvm attach} share: how the supervisor instruments and serves a process. */
final class SupervisorOptions {

    @Option(names = {"-q", "--quiet"}, description = "Do not print the ready line on stderr.")
    boolean quiet;

    @Option(names = "--json", description = "Print the ready line as one JSON object on stderr (stdout is the "
        + "program's).")
    boolean json;

    @Option(names = "--timings", description = "Print how long each phase took (stderr).")
    boolean timings;

    @Option(names = "--no-entry-redirect", description = "Route only the rewritten direct call sites; leave every "
        + "function's entry as it is (calls through pointers then keep reaching the original code).")
    boolean noEntryRedirect;

    @Option(names = "--cflags", paramLabel = "FLAGS", defaultValue = "",
        description = "Compiler flags the program was built with; 'hpvm swap FN file.c' compiles with them.")
    String cflags;

    @Option(names = "--compact", paramLabel = "auto[:SECONDS]",
        description = "Compact hot functions by itself: every SECONDS (default 10) sample the worker at 100 Hz for "
            + "SECONDS/2 (1 to 5 s) and compact each function with at least 0.5%% of the samples that was not swapped "
            + "or rolled back in the last SECONDS (see 'hpvm compact'). Off by default: each compaction stops the "
            + "worker's threads briefly, and a later swap of a compacted function costs one more stop.")
    String compact;

    @Option(names = "--debug-file", paramLabel = "FILE",
        description = "The program's separate debug file (objcopy --only-keep-debug; a -dbgsym package's .debug), "
            + "for a stripped program: its .symtab makes static functions patchable and file statics bind. Without "
            + "it, hpvm looks where gdb does: /usr/lib/debug/.build-id/, the debuginfod cache, and the "
            + ".gnu_debuglink name beside the program, in its .debug/ and under /usr/lib/debug. Checked by build-id "
            + "(or the link's CRC).")
    java.nio.file.Path debugFile;

    @Option(names = "--arena-size", paramLabel = "BYTES", defaultValue = "32M",
        description = "Space reserved for patch code (sparse until used; default ${DEFAULT-VALUE}). Suffixes K, M.")
    String arenaSize;

    Supervisor.Options toOptions(boolean agent) throws HpvmException {
        return new Supervisor.Options(quiet, Sizes.parse(arenaSize, "--arena-size"), timings, !noEntryRedirect, cflags,
            agent, json, Main::serve, autoCompactMillis(), debugFile == null ? null : debugFile.toAbsolutePath());
    }

    /** {@code --compact}: 0 when off, else the period in milliseconds. */
    private long autoCompactMillis() throws HpvmException {
        if (compact == null) {
            return 0;
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("auto(?::([0-9]{1,6}))?").matcher(compact);
        if (!m.matches() || (m.group(1) != null && Integer.parseInt(m.group(1)) == 0)) {
            throw new HpvmException(ExitCode.USAGE, "--compact takes auto or auto:SECONDS (1 or more), not '"
                + compact + "'");
        }
        return (m.group(1) == null ? 10 : Integer.parseInt(m.group(1))) * 1000L;
    }
}
