package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.supervisor.Supervisor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code hpvm attach PID}: takes over a running process ({@code supervisor/Attach}). By default the supervisor that
 * serves the session runs in the background: this command starts it again with {@code --foreground} in a new
 * session ({@code setsid}), relays what it prints until it has attached (or failed), and returns; the supervisor's
 * later messages go to the session's {@code supervisor.log}.
 */
@Command(name = "attach", mixinStandardHelpOptions = true,
    description = {"Take over process PID, which is already running (started without hpvm): stop its threads for "
        + "a moment, route its functions through hot-swappable slots exactly as 'hpvm run' does, and leave a "
        + "supervisor in the background serving its session ('hpvm swap --pid PID ...', 'hpvm ls').",
        "Needs ptrace rights over PID: its own user or root, kernel.yama.ptrace_scope 0 (or root for 1 and 2), and "
            + "no debugger attached. Unlike 'hpvm run', the supervisor is not the program's parent: it forwards no "
            + "signals and does not learn its exit status; hpvm's agent thread is not started. The supervisor ends "
            + "when the process does."},
    footer = {"", "Example:", "  hpvm attach $(pidof server) && hpvm swap --pid $(pidof server) handle fix.o"})
final class AttachCommand implements Callable<Integer> {

    /** Set in the background supervisor's environment: move its output to the session log once attached. */
    private static final String LOG_ENV = "HPVM_ATTACH_LOG";
    /** The background supervisor's last line to this command: it has attached, and where its log is. */
    private static final String BACKGROUND = "hpvm: supervisor pid ";

    @Mixin
    SupervisorOptions supervisor;

    @Option(names = "--foreground", description = "Serve the session in this process (its output on stderr) until "
        + "PID ends, instead of in the background.")
    boolean foreground;

    @Option(names = "--children", description = "Also take over every process forked from PID that runs the same "
        + "executable (a pre-forked server's workers), as one session: a swap reaches all of them.")
    boolean children;

    @Parameters(index = "0", paramLabel = "PID", description = "The process to take over.")
    int pid;

    @Override
    public Integer call() throws Exception {
        if (pid <= 0) {
            throw new HpvmException(ExitCode.USAGE, "PID must be a process id, not " + pid);
        }
        if (!foreground) {
            return background();
        }
        boolean toLog = System.getenv(LOG_ENV) != null;
        return new Supervisor(supervisor.toOptions(false), System.err).attach(pid, children, () -> {
            if (toLog) {
                logToSession();
            }
        });
    }

    /**
     * Starts this command again with {@code --foreground}, detached from this terminal, and relays its stderr until
     * the attached line (or until it ends, with its exit code).
     */
    private int background() throws HpvmException {
        List<String> cmd = new ArrayList<>();
        if (Files.isExecutable(Path.of("/usr/bin/setsid"))) {
            cmd.add("/usr/bin/setsid");
        }
        ProcessHandle.Info self = ProcessHandle.current().info();
        cmd.add(self.command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        List<String> args = List.of(self.arguments().orElse(new String[0]));
        int at = args.indexOf("attach");
        if (at < 0) {
            throw new HpvmException(ExitCode.SYSTEM, "cannot tell how this JVM was started (its arguments are not "
                + "readable), so cannot start the background supervisor; use hpvm attach --foreground");
        }
        cmd.addAll(args.subList(0, at + 1));
        cmd.add("--foreground");
        cmd.addAll(args.subList(at + 1, args.size()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectInput(new File("/dev/null"))
            .redirectOutput(ProcessBuilder.Redirect.DISCARD);
        pb.environment().put(LOG_ENV, "1");
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new HpvmException(ExitCode.SYSTEM, "cannot start the background supervisor: " + e.getMessage());
        }
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(),
            StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.startsWith(BACKGROUND)) {
                    if (!supervisor.quiet && !supervisor.json) {
                        System.err.println(line);
                    }
                    return 0;
                }
                System.err.println(line);
            }
            return p.waitFor();
        } catch (IOException e) {
            throw new HpvmException(ExitCode.SYSTEM, "reading the background supervisor's output: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

    /**
     * Points this process's stdout and stderr at the session's {@code supervisor.log}: the command that started it
     * stops reading once attached, and later messages (compaction, errors, the process's end) must go somewhere.
     */
    private void logToSession() {
        String where;
        int fd = -1;
        try {
            SessionDir session = SessionDir.find(pid);
            fd = LibC.INSTANCE.open(session.log().toString(), LibC.O_WRONLY | LibC.O_CREAT | LibC.O_APPEND
                | LibC.O_CLOEXEC, 0600);
            where = "its log: " + session.workerPath("supervisor.log");
        } catch (HpvmException | RuntimeException e) {
            where = "no log (" + e.getMessage() + "): its later messages are lost";
        }
        System.err.println(BACKGROUND + ProcessHandle.current().pid() + " serves the session in the background; "
            + where);
        System.err.flush();
        try {
            if (fd < 0) {
                fd = LibC.INSTANCE.open("/dev/null", LibC.O_WRONLY | LibC.O_CLOEXEC, 0); // not the pipe of a command gone
            }
            LibC.INSTANCE.dup2(fd, 1);
            LibC.INSTANCE.dup2(fd, 2);
            LibC.INSTANCE.close(fd);
        } catch (RuntimeException e) {
            // stays on the pipe: later messages are lost
        }
    }
}
