package io.hpvm.runtime.cli;

import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.CommandRequest;
import io.hpvm.runtime.session.ControlClient;
import io.hpvm.runtime.session.SessionDir;

import java.io.PrintStream;
import java.util.List;
import java.util.Set;

/**
 * The fast path of {@code hpvm swap}, {@code rollback}, {@code ls} and {@code patch}: find the session, hand the
 * command line to its supervisor, which runs it in its warm JVM (the registry, Capstone and the loader already
 * loaded and compiled), and print its answer. This class loads none of that itself: no picocli, no Chronicle Map,
 * no ELF code, so the command's own JVM starts and exits quickly.
 *
 * <p>When no supervisor answers (it was killed, or the session predates it), the command runs in this process as
 * it always did (the slow path), after one line on stderr saying so; the slot table and the registry are the truth
 * for both paths, so the result is the same. Anything that is not one session's business (help, version, a list of
 * several sessions, no session at all) also runs here, so its messages are exactly the usual ones.
 */
final class ThinClient {

    private static final Set<String> SERVED = Set.of("swap", "rollback", "ls", "patch", "compact", "detach");
    /** Set to run every command in its own process (tests of the slow path; debugging). */
    static final String DIRECT = "HPVM_DIRECT";

    private ThinClient() {
    }

    /**
     * Runs {@code args} through the session's supervisor; returns its exit code, or -1 when the command must run in
     * this process.
     */
    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || !SERVED.contains(args[0]) || System.getenv(DIRECT) != null) {
            return -1;
        }
        Integer pid = null;
        boolean sessions = false;
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("--help") || a.equals("-V") || a.equals("--version")) {
                return -1;
            }
            if (a.equals("--sessions")) {
                sessions = true;
            }
            try {
                if (a.equals("--pid") && i + 1 < args.length) {
                    pid = Integer.parseInt(args[i + 1]);
                } else if (a.startsWith("--pid=")) {
                    pid = Integer.parseInt(a.substring("--pid=".length()));
                }
            } catch (NumberFormatException e) {
                return -1; // the command line parser says what is wrong
            }
        }
        if (args[0].equals("ls") && pid == null && sessions) {
            return -1; // a list of sessions: not one supervisor's business
        }
        SessionDir session;
        try {
            session = SessionDir.find(pid);
        } catch (HpvmException | RuntimeException e) {
            return -1; // no such session, or several ('ls' then lists them): the usual path says so as usual
        }
        CommandRequest.Answer answer;
        try {
            answer = ControlClient.runCommand(session, CommandRequest.of(List.of(args)));
        } catch (ControlClient.NotAnswering e) {
            err.println("hpvm: " + e.getMessage() + "; doing the work in this process instead (the slow path)");
            return -1;
        } catch (SystemException e) {
            err.println("hpvm: error: " + e.getMessage());
            return e.code().value;
        }
        if (answer.exit() < 0) {
            return -1; // a supervisor that does not run commands
        }
        out.print(answer.out());
        out.flush();
        err.print(answer.err());
        err.flush();
        return answer.exit();
    }
}
