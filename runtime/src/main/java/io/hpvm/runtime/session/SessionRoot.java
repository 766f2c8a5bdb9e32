package io.hpvm.runtime.session;

import io.hpvm.runtime.linux.FileSystem;
import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The directory that holds one user's sessions: {@code /dev/shm/hpvm-UID}, or {@code $HPVM_SESSION_ROOT}. Other
 * local users can create names in {@code /dev/shm} (and {@code /tmp}) too, so the root is never trusted by its name:
 * before any use it is checked with {@code lstat} to be a directory (not a symbolic link) owned by the caller with
 * mode 0700, reached only through directories owned by the caller or root (shared ones sticky), and then opened with
 * {@code O_DIRECTORY|O_NOFOLLOW}; every later file operation goes through that descriptor
 * ({@link FileSystem#viaDescriptor}, {@code openat}, {@code unlinkat}). Anything else is refused with exit 7, naming
 * the path, its owner and mode, and what to do.
 *
 * <p>A symbolic link is followed only in {@code HPVM_SESSION_ROOT} (the user chose it) and only when the caller or
 * root owns it; the verified real path is what the worker maps and what {@code /proc/PID/maps} shows.
 */
public final class SessionRoot {

    private static SessionRoot current;

    private final Path configured;
    private final Path path;
    private final FileSystem.Stat stat;
    /** The root's descriptor, opened on first use (commands that only look need no native code). */
    private int fd = -1;
    private Boolean noexec;

    private SessionRoot(Path configured, Path path, FileSystem.Stat stat) {
        this.configured = configured;
        this.path = path;
        this.stat = stat;
    }

    /**
     * The root as configured: {@code $HPVM_SESSION_ROOT} (or the system property {@code hpvm.session.root}), else
     * {@code /dev/shm/hpvm-UID}.
     */
    public static Path configured() {
        String override = override();
        return override != null ? Path.of(override).toAbsolutePath().normalize()
            : Path.of("/dev/shm", "hpvm-" + FileSystem.uid());
    }

    /** {@code $HPVM_SESSION_ROOT} (or the system property {@code hpvm.session.root}), or null when not set. */
    private static String override() {
        String override = System.getProperty("hpvm.session.root", System.getenv("HPVM_SESSION_ROOT"));
        return override == null || override.isEmpty() ? null : override;
    }

    /**
     * The verified root (made when missing), once per process and configured path. A root given up for another (tests
     * switch roots) keeps its descriptor open: sessions found through it may still be in use.
     */
    public static synchronized SessionRoot get() throws SystemException {
        Path want = configured();
        if (current == null || !current.configured.equals(want) || !current.stillThere()) {
            current = open(want, override() == null);
        }
        return current;
    }

    /** True when the real path still names the directory that was verified (and is held open). */
    private boolean stillThere() {
        try {
            FileSystem.Stat now = FileSystem.lstat(path);
            return now != null && now.dev() == stat.dev() && now.ino() == stat.ino();
        } catch (SystemException e) {
            return false;
        }
    }

    /**
     * A path for messages: one through the root's descriptor ({@code /proc/self/fd/N/...}, meaningless outside this
     * process) is shown as the root's real path.
     */
    public static synchronized String shown(Path p) {
        String s = p.toString();
        if (current != null && current.fd >= 0) {
            String via = "/proc/self/fd/" + current.fd + "/";
            if (s.startsWith(via)) {
                return current.path.resolve(s.substring(via.length())).toString();
            }
        }
        return s;
    }

    /** The verified real path of the root: for messages, and for the worker to map the session's files by. */
    public Path path() {
        return path;
    }

    /** True when the root's file system is mounted noexec (the code region then comes from memfd_create). */
    public synchronized boolean noexec() throws SystemException {
        if (noexec == null) {
            noexec = FileSystem.isNoexec(fd(), path.toString());
        }
        return noexec;
    }

    /**
     * The root's descriptor ({@code O_DIRECTORY|O_NOFOLLOW}), opened on first use and checked to be the directory
     * that was verified (same device and inode): every file hpvm makes, opens or removes in the root goes through it.
     */
    synchronized int fd() throws SystemException {
        if (fd < 0) {
            int opened = FileSystem.openAt(FileSystem.AT_FDCWD, path.toString(), FileSystem.O_RDONLY
                | FileSystem.O_DIRECTORY, 0, "session root " + path);
            FileSystem.Stat st = FileSystem.fstat(opened, "session root " + path);
            if (st.dev() != stat.dev() || st.ino() != stat.ino()) {
                FileSystem.close(opened);
                throw new SystemException("session root " + path + " was replaced after hpvm checked it; refusing to "
                    + "use it (another user may be racing for it)");
            }
            checkRoot(configured, path, st, FileSystem.uid());
            fd = opened;
        }
        return fd;
    }

    /** A path for Java's file APIs to {@code name} inside the root, through the verified descriptor. */
    Path file(String name) throws SystemException {
        return FileSystem.viaDescriptor(fd(), name);
    }

    static SessionRoot open(Path configured, boolean isDefault) throws SystemException {
        int me = FileSystem.uid();
        Path real = walk(configured, isDefault, me);
        FileSystem.Stat st = FileSystem.lstat(real);
        if (st == null) {
            createMissing(real, configured);
            st = FileSystem.lstat(real);
            if (st == null) {
                throw new SystemException("session root " + configured + " vanished right after hpvm made it");
            }
        }
        checkRoot(configured, real, st, me);
        return new SessionRoot(configured, real, st);
    }

    /**
     * Walks the configured path from {@code /}: every existing directory on the way must be owned by the caller or
     * root, and be sticky if others may write it (or they could swap the root for their own); a symbolic link on the
     * way is followed when the caller or root owns it (never as the default root itself). Returns the real path (its
     * missing tail included as named).
     */
    private static Path walk(Path configured, boolean isDefault, int me) throws SystemException {
        return walk(configured, configured, isDefault, me, 0);
    }

    private static Path walk(Path configured, Path path, boolean isDefault, int me, int depth)
        throws SystemException {
        Path cur = Path.of("/");
        int names = path.getNameCount();
        for (int i = 0; i < names; i++) {
            Path next = cur.resolve(path.getName(i).toString());
            FileSystem.Stat st = FileSystem.lstat(next);
            if (st == null) {
                for (int k = i + 1; k < names; k++) {
                    next = next.resolve(path.getName(k).toString());
                }
                return next;
            }
            boolean last = i == names - 1;
            if (st.isSymlink()) {
                if (last && isDefault || st.uid() != me && st.uid() != 0) {
                    throw refuse(configured, next, "is a symbolic link owned by " + FileSystem.userName(st.uid())
                        + (last && isDefault ? "; hpvm does not follow a link as its session root, since another "
                        + "user could point it anywhere" : "; hpvm follows only links that you or root own"));
                }
                if (depth > 40) {
                    throw refuse(configured, next, "is one of more than 40 symbolic links in a row (a loop?)");
                }
                Path target;
                try {
                    target = next.getParent().resolve(Files.readSymbolicLink(next)).normalize();
                } catch (IOException e) {
                    throw refuse(configured, next, "is a symbolic link hpvm cannot read");
                }
                for (int k = i + 1; k < names; k++) {
                    target = target.resolve(path.getName(k).toString());
                }
                return walk(configured, target, false, me, depth + 1); // the link's target, checked from / again
            }
            if (!last) {
                if (!st.isDirectory()) {
                    throw refuse(configured, next, "is " + st.kind() + ", not a directory");
                }
                if (st.uid() != me && st.uid() != 0 || (st.permissions() & 022) != 0
                    && (st.permissions() & 01000) == 0) {
                    throw refuse(configured, next, "is a directory owned by " + FileSystem.userName(st.uid())
                        + " with mode " + octal(st.permissions()) + ", which lets another user replace what is "
                        + "inside it");
                }
            }
            cur = next;
        }
        return cur;
    }

    /** Makes the missing directories of {@code real} with mode 0700 (an existing one is checked by the caller). */
    private static void createMissing(Path real, Path configured) throws SystemException {
        Path cur = Path.of("/");
        for (int i = 0; i < real.getNameCount(); i++) {
            cur = cur.resolve(real.getName(i).toString());
            if (FileSystem.lstat(cur) == null) {
                FileSystem.mkdirAt(FileSystem.AT_FDCWD, cur.toString(), 0700, "session root " + cur);
            }
        }
    }

    private static void checkRoot(Path configured, Path real, FileSystem.Stat st, int me) throws SystemException {
        if (!st.isDirectory()) {
            throw refuse(configured, real, "is " + st.kind() + " owned by " + FileSystem.userName(st.uid())
                + ", not a directory");
        }
        if (st.uid() != me) {
            throw refuse(configured, real, "is owned by " + FileSystem.userName(st.uid()) + ", mode "
                + octal(st.permissions()) + ", not by you, " + FileSystem.userName(me) + ": another user may have "
                + "made it to read or redirect your sessions");
        }
        if (st.permissions() != 0700) {
            throw new SystemException("session root " + real + " has mode " + octal(st.permissions()) + "; hpvm needs "
                + "0700 (only you may enter it). Fix it with: chmod 700 " + real);
        }
    }

    private static SystemException refuse(Path configured, Path at, String what) {
        boolean isDefault = override() == null;
        return new SystemException("session root " + configured + " is not safe to use: " + at + " " + what
            + ". hpvm needs a directory owned by you with mode 0700. Remove it (its owner or root can), or "
            + (isDefault ? "set HPVM_SESSION_ROOT to a directory of yours with mode 0700"
            : "choose another HPVM_SESSION_ROOT"));
    }

    private static String octal(int mode) {
        return String.format("%04o", mode);
    }

    @Override
    public String toString() {
        return path.toString();
    }
}
