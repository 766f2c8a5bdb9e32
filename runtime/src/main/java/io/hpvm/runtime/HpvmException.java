package io.hpvm.runtime;

/**
 * An error a user acts on. Its {@link ExitCode} is what the command exits with; its message names the file, symbol,
 * section, address or system call concerned, on one line (control characters from file contents are escaped).
 */
public class HpvmException extends Exception {

    private final ExitCode code;

    public HpvmException(ExitCode code, String message) {
        super(io.hpvm.loader.LoadException.oneLine(message));
        this.code = code;
    }

    public HpvmException(ExitCode code, String message, Throwable cause) {
        super(io.hpvm.loader.LoadException.oneLine(message), cause);
        this.code = code;
    }

    public ExitCode code() {
        return code;
    }
}
