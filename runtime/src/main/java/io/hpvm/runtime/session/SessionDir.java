package io.hpvm.runtime.session;

import com.sun.jna.LastErrorException;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * A session directory {@code /dev/shm/hpvm-UID/PID/} (mode 0700) with the files {@code slots}, {@code code},
 * {@code registry} and {@code lock} (mode 0600). The directory root can be moved with {@code HPVM_SESSION_ROOT}
 * (tests use it to stay apart from a user's real sessions).
 */
public final class SessionDir {

    private final Path dir;
    private final int pid;

    private SessionDir(Path dir, int pid) {
        this.dir = dir;
        this.pid = pid;
    }

    /** {@code /dev/shm/hpvm-UID}, or {@code $HPVM_SESSION_ROOT} (or the system property hpvm.session.root). */
    public static Path root() {
        String override = System.getProperty("hpvm.session.root", System.getenv("HPVM_SESSION_ROOT"));
        return override != null && !override.isEmpty() ? Path.of(override)
            : Path.of("/dev/shm", "hpvm-" + LibC.INSTANCE.getuid());
    }

    public static SessionDir create(int pid) throws SystemException {
        Path root = root();
        Path dir = root.resolve(Integer.toString(pid));
        try {
            if (!Files.isDirectory(root)) {
                Files.createDirectories(root, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString(
                    "rwx------")));
            }
            if (Files.exists(dir)) {
                deleteTree(dir); // left by a supervisor that was killed; that pid is ours now
            }
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString(
                "rwx------")));
            Files.createFile(dir.resolve("lock"), privateFile());
        } catch (IOException e) {
            throw new SystemException("create session directory " + dir + ": " + e, e);
        }
        return new SessionDir(dir, pid);
    }

    /** Files in a session directory are private to the user: 0600. */
    public static java.nio.file.attribute.FileAttribute<?> privateFile() {
        return PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));
    }

    /** Makes a file created by a library (the registry) private to the user. */
    public static void makePrivate(Path file) throws SystemException {
        try {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            throw new SystemException("chmod 0600 " + file + ": " + e.getMessage(), e);
        }
    }

    public Path dir() {
        return dir;
    }

    public int pid() {
        return pid;
    }

    public Path slots() {
        return dir.resolve("slots");
    }

    public Path code() {
        return dir.resolve("code");
    }

    /** The supervisor's request socket ({@link ControlClient}). */
    public Path control() {
        return dir.resolve("control");
    }

    public Path registry() {
        return dir.resolve("registry");
    }

    /**
     * True when process {@code pid} is alive and maps this session's slot table: a reused pid (or a dead worker)
     * does not.
     */
    public boolean isLive() {
        char state = ProcFs.state(pid);
        if (state == '?' || state == 'Z' || state == 'X') {
            return false;
        }
        try (Stream<String> lines = Files.lines(Path.of("/proc/" + pid + "/maps"))) {
            String slots = slots().toString();
            return lines.anyMatch(l -> l.endsWith(slots));
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * Every process that runs this session's code: it maps the code region executable, which only the worker and
     * the children it forked do (they inherit the shared mappings, so one swap patches them all). A child that called
     * exec no longer maps it; hpvm's own processes map the session files too, but never executable.
     */
    public List<Integer> processes() {
        List<Integer> out = new ArrayList<>();
        String code = code().toString();
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.toList()) {
                String name = p.getFileName().toString();
                if (!name.chars().allMatch(Character::isDigit)) {
                    continue;
                }
                try (Stream<String> lines = Files.lines(p.resolve("maps"))) {
                    if (lines.anyMatch(l -> l.endsWith(code) && l.split("\\s+", 3)[1].startsWith("r-x"))) {
                        out.add(Integer.parseInt(name));
                    }
                } catch (IOException | RuntimeException ignored) {
                    // gone, or not ours to read
                }
            }
        } catch (IOException e) {
            return out;
        }
        out.sort(null);
        return out;
    }

    /** Every session directory of this user, live or stale, ordered by pid. */
    public static List<SessionDir> list() {
        List<SessionDir> out = new ArrayList<>();
        Path root = root();
        if (!Files.isDirectory(root)) {
            return out;
        }
        try (Stream<Path> s = Files.list(root)) {
            s.forEach(p -> {
                try {
                    out.add(new SessionDir(p, Integer.parseInt(p.getFileName().toString())));
                } catch (NumberFormatException ignored) {
                    // not a session
                }
            });
        } catch (IOException e) {
            return out;
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
                        throw new HpvmException(ExitCode.NO_SESSION, "the worker of session " + s.dir + " (pid "
                            + pid + ") is no longer running, or pid " + pid + " now belongs to another process; the "
                            + "session is stale (remove it with: rm -r " + s.dir + ")");
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
        Path lock = dir.resolve("lock");
        int fd;
        try {
            fd = LibC.INSTANCE.open(lock.toString(), LibC.O_RDWR | LibC.O_CLOEXEC, 0600);
        } catch (LastErrorException e) {
            throw SystemException.of("open " + lock, e.getErrorCode());
        }
        try {
            LibC.INSTANCE.flock(fd, LibC.LOCK_EX);
        } catch (LastErrorException e) {
            LibC.INSTANCE.close(fd);
            throw SystemException.of("flock " + lock, e.getErrorCode());
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
            return Registry.open(registry().toFile());
        }
    }

    /** Removes the session directory. */
    public void delete() {
        try {
            deleteTree(dir);
        } catch (IOException ignored) {
            // best effort: a stale directory is reported by 'hpvm ls'
        }
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
