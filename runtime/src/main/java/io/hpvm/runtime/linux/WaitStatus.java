package io.hpvm.runtime.linux;

/** Decodes a {@code waitpid} status word, as the W* macros do. */
public record WaitStatus(int raw) {

    public boolean exited() {
        return (raw & 0x7f) == 0;
    }

    public int exitCode() {
        return (raw >> 8) & 0xff;
    }

    public boolean signaled() {
        return ((raw & 0x7f) + 1) >> 1 > 0 && !stopped();
    }

    public int termSignal() {
        return raw & 0x7f;
    }

    public boolean stopped() {
        return (raw & 0xff) == 0x7f;
    }

    public int stopSignal() {
        return (raw >> 8) & 0xff;
    }

    /** The PTRACE_EVENT_* of a ptrace event stop, or 0. */
    public int event() {
        return (raw >>> 16) & 0xffff;
    }

    /** The shell convention: the exit code, or 128+N when killed by signal N. */
    public int shellStatus() {
        return exited() ? exitCode() : 128 + termSignal();
    }

    @Override
    public String toString() {
        if (exited()) {
            return "exited with status " + exitCode();
        }
        if (stopped()) {
            return "stopped by signal " + stopSignal() + (event() != 0 ? " (ptrace event " + event() + ")" : "");
        }
        return "killed by signal " + termSignal();
    }
}
