package io.hpvm.runtime.linux;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Readers for {@code /proc/PID/*}. */
public final class ProcFs {

    public static final int AT_PHDR = 3;
    public static final int AT_ENTRY = 9;

    private ProcFs() {
    }

    /**
     * One line of {@code /proc/PID/maps}.
     *
     * @param path mapped file, or "" for anonymous mappings ("[heap]", "[stack]" kept as is)
     */
    public record Mapping(long start, long end, String perms, long offset, long inode, String path) {
        public boolean isExecutable() {
            return perms.length() > 2 && perms.charAt(2) == 'x';
        }
    }

    public static List<Mapping> maps(int pid) throws SystemException {
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/" + pid + "/maps"));
        } catch (IOException e) {
            throw new SystemException("read /proc/" + pid + "/maps: " + e.getMessage(), e);
        }
        List<Mapping> out = new ArrayList<>();
        for (String line : lines) {
            String[] f = line.trim().split("\\s+", 6);
            if (f.length < 5) {
                continue;
            }
            String[] range = f[0].split("-");
            out.add(new Mapping(Long.parseUnsignedLong(range[0], 16), Long.parseUnsignedLong(range[1], 16), f[1],
                Long.parseUnsignedLong(f[2], 16), Long.parseLong(f[4]), f.length > 5 ? f[5] : ""));
        }
        return out;
    }

    /** The value of an auxiliary vector entry of a process. */
    public static long auxv(int pid, int type) throws SystemException {
        byte[] raw;
        try {
            raw = Files.readAllBytes(Path.of("/proc/" + pid + "/auxv"));
        } catch (IOException e) {
            throw new SystemException("read /proc/" + pid + "/auxv: " + e.getMessage(), e);
        }
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        while (b.remaining() >= 16) {
            long t = b.getLong();
            long v = b.getLong();
            if (t == type) {
                return v;
            }
        }
        throw new SystemException("/proc/" + pid + "/auxv has no entry " + type);
    }

    /**
     * The process start time (field 22 of {@code /proc/PID/stat}, clock ticks since boot), which together with the
     * pid identifies a process across pid reuse; -1 when there is no such process.
     */
    public static long startTime(int pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return Long.parseLong(f[19]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** The process's state letter (R, S, Z, ...), or '?' when it does not exist. */
    public static char state(int pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            return stat.charAt(stat.lastIndexOf(')') + 2);
        } catch (IOException | RuntimeException e) {
            return '?';
        }
    }

    /** The parent's pid (field 4 of {@code /proc/PID/stat}), or -1 when there is no such process. */
    public static int parent(int pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            return Integer.parseInt(stat.substring(stat.lastIndexOf(')') + 2).split(" ")[1]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** True when {@code pid} is {@code ancestor} or one of its descendants. */
    public static boolean descendsFrom(int pid, int ancestor) {
        for (int p = pid, hops = 0; p > 1 && hops < 64; p = parent(p), hops++) {
            if (p == ancestor) {
                return true;
            }
        }
        return false;
    }
}
