package io.hpvm.runtime.linux;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;

/** A failed system call, named with its arguments and errno: {@code ptrace(PTRACE_SEIZE, 1234): EPERM ...}. */
public class SystemException extends HpvmException {

    public SystemException(String message) {
        super(ExitCode.SYSTEM, message);
    }

    public SystemException(String message, Throwable cause) {
        super(ExitCode.SYSTEM, message, cause);
    }

    /**
     * A failed file operation, in words rather than Java's ("no such file or directory", not
     * {@code NoSuchFileException: /path}).
     */
    public static SystemException io(String what, java.io.IOException e) {
        String why;
        if (e instanceof java.nio.file.NoSuchFileException) {
            why = "no such file or directory";
        } else if (e instanceof java.nio.file.AccessDeniedException) {
            why = "permission denied";
        } else if (e instanceof java.nio.file.FileAlreadyExistsException) {
            why = "it already exists";
        } else if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
            why = f.getReason();
        } else {
            why = e.getMessage() == null || e.getMessage().isBlank() ? "input/output error" : e.getMessage();
        }
        return new SystemException(what + ": " + why, e);
    }

    /** "call: strerror (errno N)". */
    public static SystemException of(String call, int errno) {
        return of(call, errno, "");
    }

    /** "call: strerror (errno N)" and what the error means here. */
    public static SystemException of(String call, int errno, String meaning) {
        return new SystemException(call + ": " + LibC.INSTANCE.strerror(errno) + " (errno " + errno + ")" + meaning);
    }
}
