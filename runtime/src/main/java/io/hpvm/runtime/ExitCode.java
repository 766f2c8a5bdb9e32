package io.hpvm.runtime;

import io.hpvm.loader.LoadException;

/**
 * Exit codes of the {@code hpvm} command, one per class of error, so scripts can tell them apart. ({@code hpvm run}
 * exits with the worker's own status once the worker has started.)
 */
public enum ExitCode {
    OK(0, "success"),
    USAGE(2, "bad command line"),
    NO_SESSION(3, "no such session (no worker under hpvm, several without --pid, or a dead or reused pid)"),
    BAD_FILE(4, "bad object or executable file (missing, not x86-64 ELF, wrong type, malformed)"),
    LINK_FAILED(5, "link failure (unresolved symbol, unsupported relocation, out of range, no such function)"),
    REFUSED(6, "refused by a safety rule (new writable data, thread-local data, ambiguous reference)"),
    SYSTEM(7, "system failure (ptrace, mmap, /proc, session files)");

    public final int value;
    public final String meaning;

    ExitCode(int value, String meaning) {
        this.value = value;
        this.meaning = meaning;
    }

    /** The exit code of a loader failure. */
    public static ExitCode of(LoadException e) {
        return switch (e.kind()) {
            case BAD_FILE -> BAD_FILE;
            case LINK -> LINK_FAILED;
            case REFUSED -> REFUSED;
            case TOO_LARGE -> SYSTEM;
        };
    }

    /** Wraps a loader failure. */
    public static HpvmException wrap(LoadException e) {
        return new HpvmException(of(e), e.getMessage(), e);
    }
}
