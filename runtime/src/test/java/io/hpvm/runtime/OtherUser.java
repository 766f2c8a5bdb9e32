package io.hpvm.runtime;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A second local user for tests of what another user can do to hpvm's sessions: made with {@code useradd} when the
 * tests run as root, and used through {@code setpriv} to run shell commands as that user. Without root, the tests
 * that need it are skipped with a message saying so.
 */
final class OtherUser {

    static final String NAME = "hpvm-other";

    private OtherUser() {
    }

    /** Skips the calling test unless running as root; makes the user when missing. */
    static void require() {
        Assumptions.assumeTrue(io.hpvm.runtime.linux.LibC.INSTANCE.getuid() == 0, "a test of another local user's "
            + "attacks needs root to create that user (useradd) and act as it (setpriv); run the tests as root");
        if (run(List.of("id", "-u", NAME)).code != 0) {
            Result r = run(List.of("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME));
            if (r.code != 0 && run(List.of("id", "-u", NAME)).code != 0) {
                throw new AssertionError("useradd " + NAME + " failed: " + r.out);
            }
        }
    }

    static int uid() {
        return Integer.parseInt(run(List.of("id", "-u", NAME)).out.trim());
    }

    /** Runs {@code sh -c script} as the other user; fails the test if it does not succeed. */
    static String sh(String script) {
        int uid = uid();
        Result r = run(List.of("setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "/bin/sh", "-c",
            script));
        if (r.code != 0) {
            throw new AssertionError("as " + NAME + ": " + script + " failed (" + r.code + "): " + r.out);
        }
        return r.out;
    }

    record Result(int code, String out) {
    }

    static Result run(List<String> cmd) {
        try {
            Process p = new ProcessBuilder(new ArrayList<>(cmd)).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(String.join(" ", cmd) + " did not finish");
            }
            return new Result(p.exitValue(), out);
        } catch (IOException | InterruptedException e) {
            throw new AssertionError("cannot run " + String.join(" ", cmd) + ": " + e, e);
        }
    }
}
