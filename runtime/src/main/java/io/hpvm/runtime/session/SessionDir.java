package io.hpvm.runtime.session;

import com.sun.jna.LastErrorException;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.FileSystem;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * A session directory {@code ROOT/PID/} (mode 0700) in the verified {@link SessionRoot}, with the files
 * {@code slots}, {@code code}, {@code registry}, {@code lock} and {@code control} (mode 0600). hpvm reaches them
 * through the root's descriptor, never by re-walking a path other users could change; the worker maps them by the
 * root's verified real path. The code region is usually a System V segment, its id in the file {@code code-shm}
 * ({@link CodeRegion}); where the system refuses one, the {@code code} file, or, where the root is mounted noexec, a
 * memfd the worker holds, named by the file {@code code-fd}.
 */
public final class SessionDir {

    /** The files hpvm makes in a session directory: the only ones it ever deletes. */
    private static final List<String> FILES = List.of("slots", "code", "code-fd", "code-shm", "registry", "lock",
        "control", "sites", "supervisor.log", "gdb-jit", SessionDir.DEBUGGER_LIBRARY);

    /** The file name of the library giving the worker gdb's JIT interface. */
    public static final String DEBUGGER_LIBRARY = "libhpvm-gdb-jit.so";

    private final SessionRoot root;
    private final int pid;

    private SessionDir(SessionRoot root, int pid) {
        this.root = root;
        this.pid = pid;
    }

    /** The configured session root, for messages (it may not exist yet). */
    public static Path root() {
        return SessionRoot.configured();
    }

    /**
     * Makes the session directory of a new worker. One left behind by a supervisor that was killed (the pid is
     * ours now) is emptied of hpvm's own files and removed first; one holding anything else is refused, not deleted.
     */
    public static SessionDir create(int pid) throws SystemException {
        SessionRoot root = SessionRoot.get();
        SessionDir s = new SessionDir(root, pid);
        String name = Integer.toString(pid);
        if (!FileSystem.mkdirAt(root.fd(), name, 0700, s.dir().toString())) {
            s.requireOwnDirectory();
            s.removeFiles();
            if (FileSystem.unlinkAt(root.fd(), name, true) != 0 || !FileSystem.mkdirAt(root.fd(), name, 0700,
                s.dir().toString())) {
                throw new SystemException("session directory " + s.dir() + " is left from an earlier worker of pid "
                    + pid + " and holds files hpvm did not make; look at them and remove the directory yourself");
            }
        }
        int fd = FileSystem.openAt(root.fd(), name + "/lock", FileSystem.O_RDWR | FileSystem.O_CREAT
            | FileSystem.O_EXCL, 0600, s.dir().resolve("lock").toString());
        FileSystem.close(fd);
        return s;
    }

    /** Refuses a session entry that is not a directory of the caller's (a link or file cannot get there by hpvm). */
    private void requireOwnDirectory() throws SystemException {
        FileSystem.Stat st = FileSystem.lstatAt(root.fd(), Integer.toString(pid), dir().toString());
        if (st == null || !st.isDirectory() || st.uid() != FileSystem.uid()) {
            throw new SystemException("session directory " + dir() + " is " + (st == null ? "missing" : st.kind()
                + " owned by " + FileSystem.userName(st.uid())) + ", not a directory hpvm made; it is left alone");
        }
    }

    /** Files in a session directory are private to the user: 0600. */
    public static java.nio.file.attribute.FileAttribute<?> privateFile() {
        return PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));
    }

    /** Makes a file created by a library (the registry, the control socket) private to the user. */
    public static void makePrivate(Path file) throws SystemException {
        try {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            throw SystemException.io("chmod 0600 " + file, e);
        }
    }

    /** The directory's real path, for messages. */
    public Path dir() {
        return root.path().resolve(Integer.toString(pid));
    }

    public int pid() {
        return pid;
    }

    /** A session file for hpvm's own use, through the root's descriptor. */
    private Path file(String name) throws SystemException {
        return root.file(pid + "/" + name);
    }

    /** A session file as the worker opens it (the root's verified real path). */
    public Path workerPath(String name) {
        return dir().resolve(name);
    }

    public Path slots() throws SystemException {
        return file("slots");
    }

    /**
     * The code region: the {@code code} file, or, where the root is noexec, the memfd the worker holds (at the fd
     * number the file {@code code-fd} records, reached as {@code /proc/PID/fd/N}).
     */
    public Path code() throws SystemException {
        int fd = codeFd();
        return fd < 0 ? file("code") : Path.of("/proc/" + pid + "/fd/" + fd);
    }

    /** The worker's descriptor of the code region's memfd (noexec root), or -1 when the code region is a file. */
    public int codeFd() throws SystemException {
        return (int) recorded("code-fd");
    }

    /** The number a session file records, or -1 when there is no such file. */
    private long recorded(String name) throws SystemException {
        try {
            return Long.parseLong(Files.readString(file(name), StandardCharsets.US_ASCII).trim());
        } catch (java.nio.file.NoSuchFileException | NumberFormatException e) {
            return -1;
        } catch (IOException e) {
            throw SystemException.io("read " + workerPath(name), e);
        }
    }

    /** The code region's System V segment id, or -1 when the region is a file or memfd ({@link CodeRegion}). */
    public int codeShm() throws SystemException {
        return (int) recorded("code-shm");
    }

    /** The library giving the worker gdb's JIT interface, as hpvm writes it ({@code DebuggerLaunch}). */
    public Path debuggerLibrary() throws SystemException {
        return file(DEBUGGER_LIBRARY);
    }

    /** Records where the worker's {@code __jit_debug_descriptor} is. */
    public void recordDebugger(long descriptor) throws SystemException {
        record("gdb-jit", descriptor);
    }

    /** Where the worker's {@code __jit_debug_descriptor} is, or -1 when gdb's JIT interface was not loaded. */
    public long debugger() throws SystemException {
        return recorded("gdb-jit");
    }

    /** Records that the code region is System V segment {@code id}. */
    public void recordCodeShm(int id) throws SystemException {
        record("code-shm", id);
    }

    /** hpvm's read-write view of the code region, which the worker maps at {@code address}. */
    public CodeRegion openCode(long address) throws SystemException {
        int shm = codeShm();
        return shm >= 0 ? CodeRegion.openShared(shm, address) : CodeRegion.open(code(), address);
    }

    /** Records that the code region is the worker's memfd {@code fd}. */
    public void recordCodeFd(int fd) throws SystemException {
        record("code-fd", fd);
    }

    private void record(String name, long value) throws SystemException {
        try {
            Files.writeString(file(name), Long.toString(value), StandardCharsets.US_ASCII,
                java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            throw SystemException.io("write " + workerPath(name), e);
        }
    }

    /** The supervisor's request socket ({@link ControlClient}). */
    public Path control() throws SystemException {
        return file("control");
    }

    /** Where launch rewrote the text for each function ({@link SiteTable}): what compaction rewrites again. */
    public Path sites() throws SystemException {
        return file("sites");
    }

    public Path registry() throws SystemException {
        return file("registry");
    }

    /** What a background supervisor ({@code hpvm attach}) prints once its command has returned. */
    public Path log() throws SystemException {
        return file("supervisor.log");
    }

    /** True when the root is mounted noexec (see {@link #code()}). */
    public boolean noexecRoot() throws SystemException {
        return root.noexec();
    }

    /**
     * True when process {@code pid} is alive and maps this session's slot table: a reused pid (or a dead worker)
     * does not. The mapping is recognised by the file's device and inode, not by its name.
     */
    public boolean isLive() {
        char state = ProcFs.state(pid);
        if (state == '?' || state == 'Z' || state == 'X') {
            return false;
        }
        FileSystem.Stat slots = stat("slots");
        return slots != null && maps(pid, mappingOf(slots));
    }

    /** What {@code lstat} says of a session file (by its real path: looking needs no descriptor), or null. */
    private FileSystem.Stat stat(String name) {
        try {
            return FileSystem.lstat(workerPath(name));
        } catch (SystemException e) {
            return null;
        }
    }

    /** A mapping of the file {@code f}, recognised by its device and inode. */
    private static java.util.function.Predicate<ProcFs.Mapping> mappingOf(FileSystem.Stat f) {
        String dev = f.mapsDevice();
        return m -> m.inode() == f.ino() && m.device().equals(dev);
    }

    /** True when process {@code p} has a mapping {@code which} accepts. */
    private static boolean maps(int p, java.util.function.Predicate<ProcFs.Mapping> which) {
        try {
            for (ProcFs.Mapping m : ProcFs.maps(p)) {
                if (which.test(m)) {
                    return true;
                }
            }
            return false;
        } catch (SystemException | RuntimeException e) {
            return false; // the process ended meanwhile
        }
    }

    /**
     * Every process that runs this session's code: the worker and the processes it forked that map the code region
     * executable (they inherit the shared mappings, so one swap patches them all). A child that called exec no
     * longer maps it. Found among the worker's descendants, not by reading every process on the machine.
     */
    public List<Integer> processes() {
        List<Integer> out = new ArrayList<>();
        java.util.function.Predicate<ProcFs.Mapping> code;
        try {
            int shm = codeShm();
            if (shm >= 0) {
                code = m -> m.inode() == shm && m.path().startsWith("/SYSV");
            } else {
                code = mappingOf(FileSystem.stat(code()));
            }
        } catch (SystemException e) {
            return out;
        }
        for (int p : ProcFs.descendants(pid)) {
            if (maps(p, m -> m.perms().startsWith("r-x") && code.test(m))) {
                out.add(p);
            }
        }
        out.sort(null);
        return out;
    }

    /** Every session directory of this user, live or stale, ordered by pid. */
    public static List<SessionDir> list() throws SystemException {
        SessionRoot root = SessionRoot.get();
        List<SessionDir> out = new ArrayList<>();
        int me = FileSystem.uid();
        try (Stream<Path> s = Files.list(root.path())) {
            for (Path p : s.toList()) {
                String name = p.getFileName().toString();
                if (!name.chars().allMatch(Character::isDigit) || name.isEmpty() || name.length() > 9) {
                    continue;
                }
                FileSystem.Stat st = FileSystem.lstat(p);
                if (st != null && st.isDirectory() && st.uid() == me) {
                    out.add(new SessionDir(root, Integer.parseInt(name)));
                }
            }
        } catch (IOException e) {
            throw SystemException.io("list session root " + root.path(), e);
        }
        out.sort(Comparator.comparingInt(SessionDir::pid));
        return out;
    }

    /**
     * Finds the session a command acts on: the one with {@code pid}, or, when {@code pid} is null, this user's only
     * live session.
     */
    public static SessionDir find(Integer pid) throws HpvmException {
        List<SessionDir> all = list();
        if (pid != null) {
            for (SessionDir s : all) {
                if (s.pid == pid) {
                    if (!s.isLive()) {
                        throw new HpvmException(ExitCode.NO_SESSION, "the worker of session " + s.dir() + " (pid "
                            + pid + ") is no longer running, or pid " + pid + " now belongs to another process; the "
                            + "session is stale (remove it with: rm -r " + s.dir() + ")");
                    }
                    return s;
                }
            }
            throw new HpvmException(ExitCode.NO_SESSION, "no hpvm session for pid " + pid + " in " + root()
                + describe(all));
        }
        List<SessionDir> live = all.stream().filter(SessionDir::isLive).toList();
        if (live.isEmpty()) {
            throw new HpvmException(ExitCode.NO_SESSION, "no worker is running under hpvm for this user (looked in "
                + root() + "); start one with: hpvm run ./worker" + describe(all));
        }
        if (live.size() > 1) {
            throw new HpvmException(ExitCode.NO_SESSION, live.size() + " workers are running under hpvm (pids "
                + String.join(", ", live.stream().map(s -> Integer.toString(s.pid)).toList())
                + "); choose one with --pid");
        }
        return live.get(0);
    }

    private static String describe(List<SessionDir> all) {
        if (all.isEmpty()) {
            return "";
        }
        return " (sessions there: " + String.join(", ", all.stream()
            .map(s -> s.pid + (s.isLive() ? "" : " stale")).toList()) + ")";
    }

    /** Takes the session's exclusive lock (flock), waiting for other mutating commands to finish. */
    public Lock lock() throws SystemException {
        int fd = FileSystem.openAt(root.fd(), pid + "/lock", FileSystem.O_RDWR, 0, workerPath("lock").toString());
        try {
            LibC.INSTANCE.flock(fd, LibC.LOCK_EX);
        } catch (LastErrorException e) {
            LibC.INSTANCE.close(fd);
            throw SystemException.of("flock " + workerPath("lock"), e.getErrorCode());
        }
        return new Lock(fd);
    }

    /** A held session lock. */
    public static final class Lock implements AutoCloseable {
        private int fd;

        private Lock(int fd) {
            this.fd = fd;
        }

        @Override
        public void close() {
            if (fd >= 0) {
                LibC.INSTANCE.close(fd); // releases the flock
                fd = -1;
            }
        }
    }

    /**
     * Opens the session's registry for reading. A session whose supervisor is still writing it holds the lock, so
     * this waits for the lock first.
     */
    public Registry openRegistry() throws SystemException {
        try (Lock ignored = lock()) {
            return Registry.open(registry().toFile(), workerPath("registry"));
        }
    }

    /**
     * Removes the session directory: the files hpvm makes there, then the directory, which the kernel refuses to
     * remove if anything else is in it (then it stays, and so does what is inside). Nothing is deleted recursively.
     */
    public void delete() {
        try {
            requireOwnDirectory();
            removeFiles();
            FileSystem.unlinkAt(root.fd(), Integer.toString(pid), true);
        } catch (SystemException e) {
            // not ours, or the root cannot be opened: leave it ('hpvm ls' reports it as stale)
        }
    }

    private void removeFiles() throws SystemException {
        removeCompiled();
        for (String f : FILES) {
            FileSystem.unlinkAt(root.fd(), pid + "/" + f, false);
        }
    }

    /** The directory sources are compiled in for {@code hpvm swap FN file.c} and {@code hpvm patch}. */
    private static final String COMPILED = "cc";

    /**
     * A new directory for one command's compilations, {@code cc/N} in the session directory: the objects stay
     * while the session lives (its version records name them) and go with it, where temporary directories were
     * left behind forever (5.9 MB after a day of patching redis).
     */
    public Path newCompileDir() throws SystemException {
        FileSystem.mkdirAt(root.fd(), pid + "/" + COMPILED, 0700, "the session's compile directory");
        for (int n = 1; n < 100_000; n++) {
            if (FileSystem.mkdirAt(root.fd(), pid + "/" + COMPILED + "/" + n, 0700, "a compile directory")) {
                return workerPath(COMPILED + "/" + n);
            }
        }
        throw new SystemException("no free compile directory in " + workerPath(COMPILED));
    }

    /** Removes {@code cc/N/FILE} (two levels, nothing followed: entries are unlinked relative to the root). */
    private void removeCompiled() throws SystemException {
        String[] dirs = workerPath(COMPILED).toFile().list();
        for (String d : dirs == null ? new String[0] : dirs) {
            String[] files = workerPath(COMPILED + "/" + d).toFile().list();
            for (String f : files == null ? new String[0] : files) {
                FileSystem.unlinkAt(root.fd(), pid + "/" + COMPILED + "/" + d + "/" + f, false);
            }
            FileSystem.unlinkAt(root.fd(), pid + "/" + COMPILED + "/" + d, true);
        }
        FileSystem.unlinkAt(root.fd(), pid + "/" + COMPILED, true);
    }
}
