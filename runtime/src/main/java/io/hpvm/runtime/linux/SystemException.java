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

    /** "call: strerror (errno N)". */
    public static SystemException of(String call, int errno) {
        return new SystemException(call + ": " + LibC.INSTANCE.strerror(errno) + " (errno " + errno + ")");
    }
}
