package io.hpvm.runtime.linux;

import io.hpvm.asm.Snippets;
import io.hpvm.loader.LoadException;

import java.nio.charset.StandardCharsets;

/**
 * Runs system calls inside a stopped tracee: the {@code syscall; int3} snippet is written over the bytes at a
 * scratch address the caller owns for the moment (the entry point, before the program has run), the registers are
 * set, and the tracee continues until the int3. {@link #close()} restores the bytes and every register.
 */
public final class Injector implements AutoCloseable {

    public static final int SYS_CLOSE = 3;
    public static final int SYS_MMAP = 9;
    public static final int SYS_MUNMAP = 11;
    public static final int SYS_FCNTL = 72;
    public static final int SYS_FTRUNCATE = 77;
    public static final int SYS_OPENAT = 257;
    public static final int SYS_PIPE2 = 293;
    public static final int SYS_MEMFD_CREATE = 319;
    public static final int SYS_SHMAT = 30;
    public static final int SYS_SHMDT = 67;
    public static final int F_DUPFD_CLOEXEC = 1030;
    public static final int MFD_CLOEXEC = 1;
    public static final long AT_FDCWD = -100;

    private final Tracee tracee;
    private final ProcessMemory mem;
    private final long scratch;
    private final long[] savedRegs;
    private final byte[] savedCode;
    private final byte[] snippet;

    public Injector(Tracee tracee, ProcessMemory mem, long scratch) throws SystemException {
        this.tracee = tracee;
        this.mem = mem;
        this.scratch = scratch;
        try {
            this.snippet = Snippets.syscall(scratch);
        } catch (LoadException e) {
            throw new SystemException("cannot instantiate the syscall snippet: " + e.getMessage(), e);
        }
        this.savedRegs = tracee.getRegs();
        this.savedCode = mem.read(scratch, snippet.length);
        mem.write(scratch, snippet);
    }

    /** Runs system call {@code nr} with up to six arguments and returns the raw result (-errno on failure). */
    public long syscall(int nr, long... args) throws SystemException {
        long[] regs = savedRegs.clone();
        int[] argRegs = {Tracee.RDI, Tracee.RSI, Tracee.RDX, Tracee.R10, Tracee.R8, Tracee.R9};
        for (int i = 0; i < args.length; i++) {
            regs[argRegs[i]] = args[i];
        }
        regs[Tracee.RAX] = nr;
        regs[Tracee.ORIG_RAX] = -1;
        regs[Tracee.RIP] = scratch;
        tracee.setRegs(regs);
        tracee.contUntilTrap("running injected system call " + nr);
        return tracee.getRegs()[Tracee.RAX];
    }

    /**
     * Calls {@code function(args...)} (up to six integer arguments) in the tracee on a frame well below its stack
     * pointer, returning to the snippet's {@code int3}; returns rax. For calls that are safe at this point (the
     * worker stopped at its entry point has run no code of its own and holds no lock).
     */
    public long call(long function, long... args) throws SystemException {
        long sp = Tracee.callFrame(savedRegs[Tracee.RSP] - 8192L * 8);
        long trap = scratch + 2; // the int3 after the syscall instruction
        tracee.poke(sp, trap); // the return address
        tracee.setRegs(Tracee.callRegisters(savedRegs, sp, function, args));
        String what = "calling 0x" + Long.toHexString(function) + " in the worker";
        tracee.contUntilTrap(what);
        long[] after = tracee.getRegs();
        if (after[Tracee.RIP] != trap + 1) {
            throw new SystemException("worker " + tracee.pid() + " stopped at 0x" + Long.toHexString(after[Tracee.RIP])
                + " (a breakpoint of its own?) while " + what);
        }
        return after[Tracee.RAX];
    }

    /** An address on the tracee's stack, well below its stack pointer, where {@code slot}'s 8 KiB are free to use. */
    public long scratchMemory(int slot) {
        return (savedRegs[Tracee.RSP] - 8192L * (slot + 1)) & ~0xfL;
    }

    /** Copies a NUL-terminated string onto the tracee's stack, well below its stack pointer, and returns its address. */
    public long pushString(String s, int slot) throws SystemException {
        byte[] b = (s + "\0").getBytes(StandardCharsets.UTF_8);
        long at = scratchMemory(slot);
        mem.write(at, b);
        return at;
    }

    @Override
    public void close() throws SystemException {
        mem.write(scratch, savedCode);
        tracee.setRegs(savedRegs);
    }
}
