package io.hpvm.runtime;

/**
 * An error a user acts on. Its {@link ExitCode} is what the command exits with; its message names the file, symbol,
 * section, address or system call concerned, on one line (control characters from file contents are escaped).
 */
public class HpvmException extends Exception {

    private final ExitCode code;
    private final String detail;

    public HpvmException(ExitCode code, String message) {
        this(code, message, (Throwable) null);
    }

    public HpvmException(ExitCode code, String message, Throwable cause) {
        super(io.hpvm.loader.LoadException.oneLine(message), cause);
        this.code = code;
        this.detail = "";
    }

    /**
     * An error with another tool's own output beside it (a compiler's diagnostics), which is shown as that tool
     * printed it, after hpvm's one-line message.
     */
    public HpvmException(ExitCode code, String message, String detail) {
        super(io.hpvm.loader.LoadException.oneLine(message));
        this.code = code;
        this.detail = detail == null ? "" : detail.strip();
    }

    /** Another tool's output that explains the error ("" when none). */
    public String detail() {
        return detail;
    }

    public ExitCode code() {
        return code;
    }

    /** The value of work done on another thread, or its failure as thrown where it happened. */
    public static <T> T join(java.util.concurrent.CompletableFuture<T> work) throws HpvmException {
        try {
            return work.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof HpvmException h) {
                throw h;
            }
            throw e;
        }
    }
}
