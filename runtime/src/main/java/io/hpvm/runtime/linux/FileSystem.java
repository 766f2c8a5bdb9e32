package io.hpvm.runtime.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The file-system calls hpvm makes relative to a directory descriptor ({@code openat}, {@code mkdirat},
 * {@code unlinkat}, {@code fstatat}), bound from libc, with a checking layer that turns {@code -1}/errno into a
 * {@link SystemException} naming the call, the path and the error ({@code mkdirat /dev/shm/hpvm-0/123: EEXIST}).
 * Nothing here follows a symbolic link in the last component of a name.
 */
public final class FileSystem {

    /** The raw binding. */
    interface Calls extends Library {
        Calls INSTANCE = Native.load("c", Calls.class);

        int openat(int dirfd, String path, int flags, int mode) throws LastErrorException;

        int mkdirat(int dirfd, String path, int mode) throws LastErrorException;

        int unlinkat(int dirfd, String path, int flags) throws LastErrorException;

        int fstatat(int dirfd, String path, Memory stat, int flags) throws LastErrorException;

        int fstat(int fd, Memory stat) throws LastErrorException;

        int fstatvfs(int fd, Memory stat) throws LastErrorException;

        int close(int fd);
    }

    public static final int AT_FDCWD = -100;
    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0100;
    public static final int O_EXCL = 0200;
    public static final int O_DIRECTORY = 0200000;
    public static final int O_NOFOLLOW = 0400000;
    public static final int O_CLOEXEC = 02000000;
    public static final int AT_SYMLINK_NOFOLLOW = 0x100;
    public static final int AT_REMOVEDIR = 0x200;
    public static final int S_IFMT = 0170000;
    public static final int S_IFDIR = 0040000;
    public static final int S_IFLNK = 0120000;
    public static final int S_IFREG = 0100000;
    public static final int ENOENT = 2;
    public static final int EEXIST = 17;
    public static final int ELOOP = 40;
    /** {@code ST_NOEXEC} in {@code struct statvfs.f_flag}. */
    public static final long ST_NOEXEC = 8;

    private FileSystem() {
    }

    /**
     * What {@code stat} says of a file (x86-64 {@code struct stat}: dev at 0, ino at 8, mode at 24, uid at 28).
     *
     * @param mode st_mode: the file type ({@link #S_IFMT} bits) and permissions
     */
    public record Stat(long dev, long ino, int mode, int uid) {
        public boolean isDirectory() {
            return (mode & S_IFMT) == S_IFDIR;
        }

        public boolean isSymlink() {
            return (mode & S_IFMT) == S_IFLNK;
        }

        /** The permission bits, with setuid, setgid and sticky. */
        public int permissions() {
            return mode & 07777;
        }

        /** What kind of file this is, in words. */
        public String kind() {
            return switch (mode & S_IFMT) {
                case S_IFDIR -> "a directory";
                case S_IFLNK -> "a symbolic link";
                case S_IFREG -> "a regular file";
                case 0010000 -> "a FIFO";
                case 0140000 -> "a socket";
                case 0020000 -> "a character device";
                case 0060000 -> "a block device";
                default -> "a special file";
            };
        }

        /** "fd:01"-style major:minor as /proc/PID/maps prints the device. */
        public String mapsDevice() {
            long major = ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
            long minor = (dev & 0xff) | ((dev >>> 12) & ~0xffL);
            return String.format("%02x:%02x", major, minor);
        }
    }

    private static Stat stat(Memory m) {
        return new Stat(m.getLong(0), m.getLong(8), m.getInt(24), m.getInt(28));
    }

    /** {@code fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)}; null when it does not exist. */
    public static Stat lstatAt(int dirfd, String name, String what) throws SystemException {
        try (Memory m = new Memory(256)) {
            Calls.INSTANCE.fstatat(dirfd, name, m, AT_SYMLINK_NOFOLLOW);
            return stat(m);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == ENOENT) {
                return null;
            }
            throw SystemException.of("lstat " + what, e.getErrorCode());
        }
    }

    /** {@code stat(path)}, following links (a {@code /proc/PID/fd/N} link to a memfd, say). */
    public static Stat stat(Path path) throws SystemException {
        Stat st = attributes(path);
        if (st == null) {
            throw new SystemException("stat " + path + ": no such file or directory");
        }
        return st;
    }

    /**
     * {@code lstat(path)}; null when it does not exist. Through Java's own "unix" attribute view (no native library
     * to load): the thin client's start-up path uses it.
     */
    public static Stat lstat(Path path) throws SystemException {
        return attributes(path, java.nio.file.LinkOption.NOFOLLOW_LINKS);
    }

    private static Stat attributes(Path path, java.nio.file.LinkOption... options) throws SystemException {
        try {
            java.util.Map<String, Object> a = Files.readAttributes(path, "unix:dev,ino,mode,uid", options);
            return new Stat((Long) a.get("dev"), (Long) a.get("ino"), (Integer) a.get("mode"), (Integer) a.get("uid"));
        } catch (java.nio.file.NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw SystemException.io("stat " + path, e);
        }
    }

    private static int uid = -1;

    /** This process's user id (the owner of {@code /proc/self}), without loading libc through JNA. */
    public static synchronized int uid() {
        if (uid < 0) {
            try {
                uid = (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
            } catch (IOException | RuntimeException e) {
                uid = LibC.INSTANCE.getuid();
            }
        }
        return uid;
    }

    public static Stat fstat(int fd, String what) throws SystemException {
        try (Memory m = new Memory(256)) {
            Calls.INSTANCE.fstat(fd, m);
            return stat(m);
        } catch (LastErrorException e) {
            throw SystemException.of("fstat " + what, e.getErrorCode());
        }
    }

    /** True when the file system of {@code fd} is mounted {@code noexec}. */
    public static boolean isNoexec(int fd, String what) throws SystemException {
        try (Memory m = new Memory(256)) {
            Calls.INSTANCE.fstatvfs(fd, m);
            return (m.getLong(72) & ST_NOEXEC) != 0;
        } catch (LastErrorException e) {
            throw SystemException.of("statvfs " + what, e.getErrorCode());
        }
    }

    /** {@code openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)}. */
    public static int openAt(int dirfd, String name, int flags, int mode, String what) throws SystemException {
        try {
            return Calls.INSTANCE.openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        } catch (LastErrorException e) {
            throw SystemException.of("open " + what, e.getErrorCode(), e.getErrorCode() == ELOOP
                ? " (it is a symbolic link, which hpvm does not follow here)" : "");
        }
    }

    /** {@code mkdirat}; false when the name already exists. */
    public static boolean mkdirAt(int dirfd, String name, int mode, String what) throws SystemException {
        try {
            Calls.INSTANCE.mkdirat(dirfd, name, mode);
            return true;
        } catch (LastErrorException e) {
            if (e.getErrorCode() == EEXIST) {
                return false;
            }
            throw SystemException.of("mkdir " + what, e.getErrorCode());
        }
    }

    /** {@code unlinkat}; returns the errno (0 on success, ENOENT when already gone) instead of throwing. */
    public static int unlinkAt(int dirfd, String name, boolean directory) {
        try {
            Calls.INSTANCE.unlinkat(dirfd, name, directory ? AT_REMOVEDIR : 0);
            return 0;
        } catch (LastErrorException e) {
            return e.getErrorCode();
        }
    }

    public static void close(int fd) {
        if (fd >= 0) {
            Calls.INSTANCE.close(fd);
        }
    }

    /** A path through which Java's own file APIs reach {@code name} in the directory open as {@code dirfd}. */
    public static Path viaDescriptor(int dirfd, String name) {
        return Path.of("/proc/self/fd/" + dirfd, name);
    }

    /** The user name of {@code uid} from /etc/passwd, or "uid N" when it has none. */
    public static String userName(int uid) {
        try {
            for (String line : Files.readAllLines(Path.of("/etc/passwd"))) {
                String[] f = line.split(":");
                if (f.length > 2 && f[2].equals(Integer.toString(uid))) {
                    return f[0] + " (uid " + uid + ")";
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // no names: the number will do
        }
        return "uid " + uid;
    }
}
