package io.hpvm.runtime.cli;

import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.UnwindRegistrar;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Where a command runs from: this process's working directory and environment, or, when the supervisor runs a thin
 * client's command, the client's (relative paths and {@code $CC} are the client's), with the supervisor's session
 * and its direct way of registering unwind information. One per thread: tests run commands concurrently.
 */
final class Invocation {

    private static final ThreadLocal<Invocation> CURRENT = ThreadLocal.withInitial(Invocation::local);

    /** The client's working directory; null when it is this process's. */
    private final Path cwd;
    private final Map<String, String> env;
    private final SessionDir session;
    private final UnwindRegistrar registrar;

    private Invocation(Path cwd, Map<String, String> env, SessionDir session, UnwindRegistrar registrar) {
        this.cwd = cwd;
        this.env = env;
        this.session = session;
        this.registrar = registrar;
    }

    private static Invocation local() {
        return new Invocation(null, null, null, UnwindRegistrar.OVER_THE_SOCKET);
    }

    static Invocation current() {
        return CURRENT.get();
    }

    /** Runs {@code body} as the supervisor runs a client's command. */
    static <T> T forClient(Path cwd, Map<String, String> env, SessionDir session, UnwindRegistrar registrar,
                           java.util.function.Supplier<T> body) {
        CURRENT.set(new Invocation(cwd, new HashMap<>(env), session, registrar));
        try {
            return body.get();
        } finally {
            CURRENT.remove();
        }
    }

    /** A path as the user typed it, made absolute against the client's working directory when it is not ours. */
    Path resolve(Path typed) {
        return cwd == null || typed.isAbsolute() ? typed : cwd.resolve(typed);
    }

    /** The client's working directory, or null when the command runs where it was typed. */
    Path cwd() {
        return cwd;
    }

    /** An environment variable of the user's. */
    String env(String name) {
        return env == null ? System.getenv(name) : env.get(name);
    }

    /** The session the supervisor runs the command for, or null (find it by --pid). */
    SessionDir session() {
        return session;
    }

    UnwindRegistrar registrar() {
        return registrar;
    }
}
