package io.hpvm.runtime;

/**
 * An error a user acts on. Its {@link ExitCode} is what the command exits with; its message names the file, symbol,
 * section, address or system call concerned.
 */
public class HpvmException extends Exception {

    private final ExitCode code;

    public HpvmException(ExitCode code, String message) {
        super(message);
        this.code = code;
    }

    public HpvmException(ExitCode code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public ExitCode code() {
        return code;
    }
}
