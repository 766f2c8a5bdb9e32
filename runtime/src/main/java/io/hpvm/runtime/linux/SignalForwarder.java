package io.hpvm.runtime.linux;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.hpvm.asm.Snippets;
import io.hpvm.loader.LoadException;

/**
 * Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT received by this (supervisor) process to the worker. The handler is
 * the {@code forward.S} snippet, linked into two pages of this process (code read+exec, the pid read-write) and
 * installed with {@code sigaction}: a Java handler could not take SIGQUIT from the JVM, and a native one runs
 * without touching the JVM at all.
 */
public final class SignalForwarder {

    private static final int[] SIGNALS = {LibC.SIGINT, LibC.SIGTERM, LibC.SIGHUP, LibC.SIGQUIT};
    private static final int PROT_READ = 1;
    private static final int PROT_WRITE = 2;
    private static final int PROT_EXEC = 4;
    private static final int MAP_PRIVATE = 2;
    private static final int MAP_ANONYMOUS = 0x20;
    private static final int SA_SIGINFO = 4;
    private static final int SA_RESTART = 0x10000000;
    /** glibc's struct sigaction: handler, 128-byte mask, int flags (+4 padding), restorer. */
    private static final int SIGACTION_SIZE = 152;

    private final Pointer pid;

    private SignalForwarder(Pointer pid) {
        this.pid = pid;
    }

    /** Installs the handler; the worker pid is set later with {@link #forwardTo}. */
    public static SignalForwarder install() throws SystemException {
        Mman mm = Mman.INSTANCE;
        long pages = mm.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (pages == -1) {
            throw SystemException.of("mmap(8192) for the signal forwarder", Native.getLastError());
        }
        long code = pages;
        long data = pages + 4096;
        byte[] handler;
        try {
            handler = Snippets.signalForwarder(code, data);
        } catch (LoadException e) {
            throw new SystemException("cannot link the signal forwarder: " + e.getMessage(), e);
        }
        new Pointer(code).write(0, handler, 0, handler.length);
        if (mm.mprotect(code, 4096, PROT_READ | PROT_EXEC) != 0) {
            throw SystemException.of("mprotect(signal forwarder)", Native.getLastError());
        }
        new Pointer(data).setInt(0, 0);
        Memory act = new Memory(SIGACTION_SIZE);
        act.clear();
        act.setLong(0, code);
        act.setInt(136, SA_SIGINFO | SA_RESTART);
        for (int sig : SIGNALS) {
            if (mm.sigaction(sig, act, Pointer.NULL) != 0) {
                throw SystemException.of("sigaction(" + sig + ")", Native.getLastError());
            }
        }
        return new SignalForwarder(new Pointer(data));
    }

    /** From now on, forwarded signals go to {@code workerPid}. */
    public void forwardTo(int workerPid) {
        pid.setInt(0, workerPid);
    }

    /** The memory-management and signal calls used here. */
    interface Mman extends com.sun.jna.Library {
        Mman INSTANCE = Native.load("c", Mman.class);

        long mmap(long addr, long length, int prot, int flags, int fd, long offset);

        int mprotect(long addr, long length, int prot);

        int sigaction(int sig, Pointer act, Pointer oldact);
    }
}
