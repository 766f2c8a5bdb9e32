package io.hpvm.runtime;

import io.hpvm.runtime.cli.Main;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** Runs short hpvm commands (swap, ls, rollback) in-process, against the test's session root. */
public final class Hpvm {

    /** What a command printed and returned. */
    public record Result(int code, String out, String err) {
        @Override
        public String toString() {
            return "exit " + code + "\n--- stdout\n" + out + "--- stderr\n" + err;
        }
    }

    private Hpvm() {
    }

    /** Runs {@code hpvm ARGS} as a user would: through the session's supervisor when one answers. */
    public static Result cmd(Path sessionRoot, String... args) {
        return run(sessionRoot, true, args);
    }

    /** Runs {@code hpvm ARGS} in this process, never asking a supervisor (the slow path). */
    public static Result direct(Path sessionRoot, String... args) {
        return run(sessionRoot, false, args);
    }

    private static Result run(Path sessionRoot, boolean thin, String... args) {
        System.setProperty("hpvm.session.root", sessionRoot.toString());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code;
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
             PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            code = thin ? Main.run(o, e, args) : Main.execute(o, e, args);
        }
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }
}
