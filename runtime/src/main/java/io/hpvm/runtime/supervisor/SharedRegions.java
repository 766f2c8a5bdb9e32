package io.hpvm.runtime.supervisor;

import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.Injector;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.session.CodeRegion;
import io.hpvm.runtime.session.SessionDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import java.util.function.IntConsumer;

/**
 * Maps a session's shared memory into the stopped worker with injected system calls: the slot table read-only, the
 * code region read+exec, both at the addresses the supervisor chose (next to the executable's text).
 */
final class SharedRegions {

    private static final int PROT_READ = 1;
    private static final int PROT_EXEC = 4;
    private static final int MAP_SHARED = 1;
    private static final int MAP_FIXED_NOREPLACE = 0x100000;

    private SharedRegions() {
    }

    /**
     * Maps the slot table (read-only) and, when {@code code} is not null, the code region (read+exec) into the stopped
     * worker; hpvm made and filled both beforehand.
     */
    static void map(Tracee tracee, ProcessMemory mem, long scratch, SessionDir session, long slotsAddress,
                    long slotsSize, CodeRegion code) throws HpvmException {
        try (Injector inj = new Injector(tracee, mem, scratch)) {
            mapInto(inj, session.workerPath("slots"), slotsAddress, slotsSize, PROT_READ, 0);
            if (code != null && code.shmId() >= 0) {
                attachInto(inj, code);
            } else if (code != null) {
                mapInto(inj, session.workerPath("code"), code.address(), code.size(), PROT_READ | PROT_EXEC, 1);
            }
        }
    }

    /**
     * The code region as a System V segment ({@link CodeRegion}, recorded in the session), or null, with the reason
     * given to {@code notShared}, where the system refuses one or {@code HPVM_CODE_REGION=file} asks for the file.
     */
    static CodeRegion segment(SessionDir session, long size, long address, Consumer<String> notShared)
        throws SystemException {
        if ("file".equals(System.getenv("HPVM_CODE_REGION"))) {
            notShared.accept("HPVM_CODE_REGION=file");
            return null;
        }
        CodeRegion code;
        try {
            code = CodeRegion.createShared(size, address);
        } catch (SystemException e) {
            notShared.accept(e.getMessage());
            return null;
        }
        try {
            session.recordCodeShm(code.shmId());
            return code;
        } catch (SystemException e) {
            try {
                code.close();
            } catch (IOException ignored) {
                // detaching our view cannot fail in a way that matters here
            }
            throw e;
        }
    }

    /** Attaches the code region's segment read+exec at its address in the worker ({@code shmat}, never elsewhere). */
    private static void attachInto(Injector inj, CodeRegion code) throws SystemException {
        long got = inj.syscall(Injector.SYS_SHMAT, code.shmId(), code.address(), LibC.SHM_RDONLY | LibC.SHM_EXEC);
        if (got == code.address()) {
            return;
        }
        if (got < 0 && got > -4096) {
            throw SystemException.of("shmat(" + code.shmId() + ", 0x" + Long.toHexString(code.address())
                + ") of the code region in the worker", (int) -got);
        }
        inj.syscall(Injector.SYS_SHMDT, got);
        throw new SystemException("shmat of the code region in the worker attached it at 0x" + Long.toHexString(got)
            + " instead of 0x" + Long.toHexString(code.address()));
    }

    /**
     * Where the session root is mounted noexec, the kernel refuses an executable mapping of a file there, so the
     * code region is a memfd the stopped worker creates (injected {@code memfd_create}) and keeps open at a high
     * descriptor (close-on-exec), where hpvm's commands reach it as {@code /proc/PID/fd/N}; returns hpvm's
     * read-write view of it.
     */
    static CodeRegion mapMemfd(Tracee tracee, ProcessMemory mem, long scratch, SessionDir session, long codeAddress,
                               long codeSize, IntConsumer codeFd) throws HpvmException {
        try (Injector inj = new Injector(tracee, mem, scratch)) {
            int fd = memfdInto(inj, tracee.pid(), codeAddress, codeSize);
            session.recordCodeFd(fd);
            codeFd.accept(fd);
            return CodeRegion.open(session.code(), codeAddress);
        }
    }

    /** The code region as a memfd of the worker's, mapped at {@code address}; returns the worker's descriptor. */
    private static int memfdInto(Injector inj, int pid, long address, long size) throws SystemException {
        long name = inj.pushString("hpvm-code", 1);
        long fd = inj.syscall(Injector.SYS_MEMFD_CREATE, name, Injector.MFD_CLOEXEC);
        if (fd < 0) {
            throw SystemException.of("memfd_create in the worker (the session root is mounted noexec, so the code "
                + "region is made in memory instead)", (int) -fd);
        }
        long r = inj.syscall(Injector.SYS_FTRUNCATE, fd, size);
        try {
            if (r < 0) {
                throw SystemException.of("ftruncate of the code memfd in the worker", (int) -r);
            }
            mapFixed(inj, fd, address, size, PROT_READ | PROT_EXEC, "the code memfd");
        } catch (SystemException e) {
            inj.syscall(Injector.SYS_CLOSE, fd);
            throw e;
        }
        // Out of the way of the program's own descriptors (a program may expect the lowest free number).
        long high = inj.syscall(Injector.SYS_FCNTL, fd, Injector.F_DUPFD_CLOEXEC, highDescriptor(pid));
        if (high < 0) {
            return (int) fd;
        }
        inj.syscall(Injector.SYS_CLOSE, fd);
        return (int) high;
    }

    /** A descriptor number well above what programs usually use, below the soft RLIMIT_NOFILE. */
    static long highDescriptor(int pid) {
        long soft = 1024;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/limits"))) {
                if (line.startsWith("Max open files")) {
                    soft = Long.parseLong(line.substring("Max open files".length()).trim().split("\\s+")[0]);
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // assume the usual 1024
        }
        return Math.max(3, Math.min(soft, 4096) - 32);
    }

    private static void mapInto(Injector inj, Path file, long address, long size, int prot, int stringSlot)
        throws SystemException {
        long path = inj.pushString(file.toString(), stringSlot);
        long fd = inj.syscall(Injector.SYS_OPENAT, Injector.AT_FDCWD, path, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0) {
            throw SystemException.of("openat(" + file + ") in the worker", (int) -fd);
        }
        try {
            mapFixed(inj, fd, address, size, prot, file.toString());
        } finally {
            inj.syscall(Injector.SYS_CLOSE, fd);
        }
    }

    /**
     * Maps the worker's descriptor {@code fd} shared at exactly {@code address} ({@code MAP_FIXED_NOREPLACE});
     * a mapping that landed elsewhere (a kernel that ignores the flag) is undone and refused.
     */
    private static void mapFixed(Injector inj, long fd, long address, long size, int prot, String what)
        throws SystemException {
        long got = inj.syscall(Injector.SYS_MMAP, address, size, prot, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
        if (got == address) {
            return;
        }
        if (got < 0 && got > -4096) {
            throw SystemException.of("mmap(0x" + Long.toHexString(address) + ", " + size + ") of " + what
                + " in the worker" + (prot != PROT_READ && got == -1 ? " (a file system mounted noexec? set "
                + "HPVM_SESSION_ROOT to an exec-capable tmpfs)" : ""), (int) -got);
        }
        inj.syscall(Injector.SYS_MUNMAP, got, size);
        throw new SystemException("mmap of " + what + " in the worker landed at 0x" + Long.toHexString(got)
            + " instead of 0x" + Long.toHexString(address) + " (kernel without MAP_FIXED_NOREPLACE?)");
    }
}
