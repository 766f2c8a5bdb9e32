package io.hpvm.runtime.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;

/**
 * The libc calls made while a worker's threads are stopped, bound with JNA direct mapping (static native methods):
 * an interface-mapped call ({@link LibC}) goes through a reflective proxy, some microseconds each, and stopping the
 * world makes four such calls per thread while every thread waits (seize, interrupt, wait, read registers; 8 threads
 * took 0.16-0.2 ms for the seize and interrupt alone).
 */
final class LibCDirect {

    static {
        Native.register(LibCDirect.class, NativeLibrary.getInstance("c"));
    }

    private LibCDirect() {
    }

    static native long ptrace(long request, int pid, long addr, long data) throws LastErrorException;

    /** {@code waitpid}, the status written to {@code status[0]}. */
    static native int waitpid(int pid, int[] status, int options) throws LastErrorException;
}
