package io.hpvm.runtime.linux;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether this process may trace a process it did not start, checked before anything is done to it, so that a
 * refusal names its cause and its fix instead of surfacing as {@code EPERM} halfway. The kernel's rules
 * (ptrace(2), "Ptrace access mode checking"): the caller has {@code CAP_SYS_PTRACE}, or its uid and gid match the
 * target's real, effective and saved ones (and the target is dumpable); Yama ({@code kernel.yama.ptrace_scope})
 * then allows 0: those; 1: only the target's ancestors (or a tracer it named with {@code PR_SET_PTRACER}), unless
 * {@code CAP_SYS_PTRACE}; 2: only {@code CAP_SYS_PTRACE}; 3: nobody. And a thread has at most one tracer.
 */
public final class PtraceAccess {

    private static final int CAP_SYS_PTRACE = 19;

    private PtraceAccess() {
    }

    /**
     * Why this process may not take over {@code pid} (which hpvm's background supervisor, not an ancestor of it,
     * will go on tracing), or null when it may.
     */
    public static String refusal(int pid) {
        String uid = ProcFs.status(pid, "Uid");
        if (uid == null) {
            return "there is no process " + pid;
        }
        if (ProcFs.state(pid) == 'Z') {
            return "process " + pid + " has exited (a zombie waiting for its parent)";
        }
        if (pid == LibC.INSTANCE.getpid()) {
            return "hpvm cannot attach to itself";
        }
        String tracer = ProcFs.status(pid, "TracerPid");
        if (tracer != null && !tracer.equals("0")) {
            int by = Integer.parseInt(tracer);
            return "process " + pid + " is already traced by process " + tracer + " (" + ProcFs.comm(by, by)
                + "): a thread has at most one tracer; detach the debugger (gdb: detach; strace: Ctrl-C) or end the "
                + "other hpvm session first";
        }
        boolean capable = capable();
        int scope = yamaScope();
        if (scope == 3) {
            return "ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3, which only a reboot undoes)";
        }
        if (scope == 2 && !capable) {
            return "kernel.yama.ptrace_scope = 2: only root (CAP_SYS_PTRACE) may trace; run hpvm attach as root";
        }
        if (scope == 1 && !capable) {
            return "kernel.yama.ptrace_scope = 1: only a process's ancestors may trace it, and hpvm's supervisor is "
                + "not an ancestor of " + pid + "; run hpvm attach as root (CAP_SYS_PTRACE), or allow it with "
                + "'sysctl kernel.yama.ptrace_scope=0' (or start the program with 'hpvm run' instead)";
        }
        if (!capable) {
            int me = LibC.INSTANCE.geteuid();
            String[] ids = uid.split("\\s+");
            for (int i = 0; i < 3 && i < ids.length; i++) {
                if (Integer.parseInt(ids[i]) != me) {
                    return "process " + pid + " runs as uid " + ids[i] + " and you are uid " + me + ": only its own "
                        + "user or root (CAP_SYS_PTRACE) may trace it; run hpvm attach as that user or as root";
                }
            }
        }
        return null;
    }

    /** Whether this process has {@code CAP_SYS_PTRACE} in its effective set. */
    static boolean capable() {
        String caps = ProcFs.status(LibC.INSTANCE.getpid(), "CapEff");
        try {
            return caps != null && (Long.parseUnsignedLong(caps, 16) >>> CAP_SYS_PTRACE & 1) != 0;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** {@code kernel.yama.ptrace_scope}, or 0 without Yama. */
    static int yamaScope() {
        try {
            return Integer.parseInt(Files.readString(Path.of("/proc/sys/kernel/yama/ptrace_scope")).trim());
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
    }
}
