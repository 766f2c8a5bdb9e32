package io.hpvm.runtime.session;

import io.hpvm.runtime.linux.SystemException;

import java.util.List;

/**
 * Who calls {@code __register_frame_info} in the worker for a swap: the session's supervisor, the one process with
 * ptrace rights. A command running in its own process asks it over the control socket ({@link #OVER_THE_SOCKET});
 * a command the supervisor runs itself calls it directly (asking itself over its socket would wait for itself).
 */
@FunctionalInterface
public interface UnwindRegistrar {

    /** Registers each of {@code ehFrames} with {@code registerFunction}; returns what was done, for the report. */
    String register(SessionDir session, long registerFunction, List<Long> ehFrames) throws SystemException;

    UnwindRegistrar OVER_THE_SOCKET = ControlClient::registerUnwind;
}
