package io.hpvm.runtime.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Pointer;
import com.sun.jna.StringArray;
import com.sun.jna.ptr.IntByReference;

import java.util.ArrayList;
import java.util.List;

/**
 * Starts a program as a child of this JVM, stopped under ptrace at its ELF entry point.
 *
 * <p>{@code posix_spawn} (not ProcessBuilder, whose reaper thread would wait on our child) runs
 * {@code /bin/sh -c 'kill -STOP $$; exec "$0" "$@"'}: the shell stops itself before the exec, we seize it, let it
 * continue, and stop at the exec event. Descriptors above 2 are closed in the child (the JVM's own files stay
 * with the JVM), the signal mask is cleared and every signal disposition reset to the default.
 */
public final class Spawner {

    private static final LibC C = LibC.INSTANCE;
    private static final String TRAMPOLINE = "kill -STOP $$; exec \"$0\" \"$@\"";

    private Spawner() {
    }

    /** Spawns {@code argv} and returns its pid once it is stopped in {@code sh} before exec. */
    public static int spawnStopped(List<String> argv) throws SystemException {
        Memory actions = new Memory(256);
        Memory attr = new Memory(512);
        Memory mask = new Memory(128);
        Memory defaults = new Memory(128);
        check("posix_spawn_file_actions_init", C.posix_spawn_file_actions_init(actions));
        check("posix_spawnattr_init", C.posix_spawnattr_init(attr));
        try {
            check("posix_spawn_file_actions_addclosefrom_np", C.posix_spawn_file_actions_addclosefrom_np(actions, 3));
            C.sigemptyset(mask);
            C.sigfillset(defaults);
            C.sigdelset(defaults, LibC.SIGKILL);
            C.sigdelset(defaults, LibC.SIGSTOP);
            check("posix_spawnattr_setsigmask", C.posix_spawnattr_setsigmask(attr, mask));
            check("posix_spawnattr_setsigdefault", C.posix_spawnattr_setsigdefault(attr, defaults));
            check("posix_spawnattr_setflags", C.posix_spawnattr_setflags(attr,
                (short) (LibC.POSIX_SPAWN_SETSIGMASK | LibC.POSIX_SPAWN_SETSIGDEF)));
            List<String> args = new ArrayList<>(List.of("/bin/sh", "-c", TRAMPOLINE));
            args.addAll(argv);
            Pointer environ = NativeLibrary.getInstance("c").getGlobalVariableAddress("environ").getPointer(0);
            IntByReference pid = new IntByReference();
            int err = C.posix_spawn(pid, "/bin/sh", actions, attr, new StringArray(args.toArray(new String[0])),
                environ);
            if (err != 0) {
                throw SystemException.of("posix_spawn(/bin/sh for " + argv.get(0) + ")", err);
            }
            IntByReference status = new IntByReference();
            try {
                C.waitpid(pid.getValue(), status, LibC.WUNTRACED);
            } catch (LastErrorException e) {
                throw SystemException.of("waitpid(" + pid.getValue() + ")", e.getErrorCode());
            }
            WaitStatus st = new WaitStatus(status.getValue());
            if (!st.stopped()) {
                throw new SystemException("starting " + argv.get(0) + ": /bin/sh " + st + " before exec");
            }
            return pid.getValue();
        } finally {
            C.posix_spawn_file_actions_destroy(actions);
            C.posix_spawnattr_destroy(attr);
        }
    }

    /**
     * Seizes the stopped shell, lets it exec the program, and runs the program to its ELF entry point
     * ({@code AT_ENTRY}; the dynamic loader has mapped and relocated every library by then).
     *
     * @return the tracee, stopped at its entry point with rip = AT_ENTRY
     */
    public static Tracee runToEntry(int pid, String program) throws SystemException {
        Tracee t = Tracee.seize(pid);
        try {
            C.kill(pid, LibC.SIGCONT);
        } catch (LastErrorException e) {
            throw SystemException.of("kill(" + pid + ", SIGCONT)", e.getErrorCode());
        }
        while (true) {
            WaitStatus st = t.waitStop();
            if (!st.stopped()) {
                throw new SystemException("cannot start " + program + ": it " + st + " before running (see the "
                    + "shell's message above)");
            }
            if (st.event() == LibC.PTRACE_EVENT_EXEC) {
                break;
            }
            int sig = st.stopSignal();
            boolean ours = st.event() != 0 || sig == LibC.SIGSTOP || sig == LibC.SIGCONT || sig == LibC.SIGTRAP;
            t.cont(ours ? 0 : sig);
        }
        // Even when rip is already at the entry (a static executable has no dynamic loader to run), the tracee is
        // still inside execve: registers set now would be overwritten by its return. Running into an int3 at the
        // entry brings it out to a clean user-mode stop.
        long entry = ProcFs.auxv(pid, ProcFs.AT_ENTRY);
        try (ProcessMemory mem = new ProcessMemory(pid, true)) {
            byte[] saved = mem.read(entry, 1);
            mem.write(entry, new byte[] {(byte) 0xcc});
            t.contUntilTrap("running to its entry point 0x" + Long.toHexString(entry));
            mem.write(entry, saved);
        }
        long[] regs = t.getRegs();
        if (regs[Tracee.RIP] != entry + 1) {
            throw new SystemException("worker " + pid + " stopped at 0x" + Long.toHexString(regs[Tracee.RIP])
                + " instead of its entry point 0x" + Long.toHexString(entry));
        }
        regs[Tracee.RIP] = entry;
        t.setRegs(regs);
        return t;
    }

    private static void check(String call, int err) throws SystemException {
        if (err != 0) {
            throw SystemException.of(call, err);
        }
    }
}
