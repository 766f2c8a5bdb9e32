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
     * @param device the file's device as maps writes it ({@code "08:01"}; {@code "00:00"} for anonymous mappings)
     * @param path   mapped file, or "" for anonymous mappings ("[heap]", "[stack]" kept as is)
     */
    public record Mapping(long start, long end, String perms, long offset, String device, long inode, String path) {
        public boolean isExecutable() {
            return perms.length() > 2 && perms.charAt(2) == 'x';
        }
    }

    public static List<Mapping> maps(int pid) throws SystemException {
        String text;
        try {
            text = Files.readString(Path.of("/proc/" + pid + "/maps"));
        } catch (IOException e) {
            throw new SystemException("read /proc/" + pid + "/maps: " + e.getMessage(), e);
        }
        // Fields taken by hand rather than with a regular expression per line: thin commands read maps in a cold
        // JVM (session liveness), and launch reads a large program's maps several times.
        List<Mapping> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            String[] f = new String[5];
            int at = 0;
            for (int i = 0; i < 5 && at >= 0; i++) {
                at = skipSpaces(line, at);
                int end = line.indexOf(' ', at);
                end = end < 0 ? line.length() : end;
                f[i] = end > at ? line.substring(at, end) : null;
                at = f[i] == null ? -1 : end;
            }
            int dash = at < 0 ? -1 : f[0].indexOf('-');
            if (dash < 0) {
                continue;
            }
            out.add(new Mapping(Long.parseUnsignedLong(f[0], 0, dash, 16),
                Long.parseUnsignedLong(f[0], dash + 1, f[0].length(), 16), f[1], Long.parseUnsignedLong(f[2], 16),
                f[3], Long.parseLong(f[4]), line.substring(skipSpaces(line, at)).strip()));
        }
        return out;
    }

    private static int skipSpaces(String s, int at) {
        while (at < s.length() && Character.isWhitespace(s.charAt(at))) {
            at++;
        }
        return at;
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

    /**
     * The value of line {@code key} of {@code /proc/PID/status} ("Uid", "TracerPid", "CapEff", ...), trimmed, or null
     * when the process or the line does not exist.
     */
    public static String status(int pid, String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith(key + ":")) {
                    return line.substring(key.length() + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            // no such process
        }
        return null;
    }

    /** The name of thread {@code tid} of process {@code pid} ({@code comm}; the process's when tid = pid), or "?". */
    public static String comm(int pid, int tid) {
        try {
            return Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/comm")).trim();
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    /** The thread ids of process {@code pid} ({@code /proc/PID/task}), in order; empty once it has ended. */
    public static List<Integer> threads(int pid) {
        List<Integer> out = new ArrayList<>();
        // File.list, one native call: the stream API took 0.1-0.8 ms here, inside every stop of the world
        String[] tasks = new java.io.File("/proc/" + pid + "/task").list();
        try {
            for (String task : tasks == null ? new String[0] : tasks) { // null: the process ended
                out.add(Integer.parseInt(task));
            }
        } catch (NumberFormatException e) {
            // not a thread: cannot happen in /proc
        }
        out.sort(null);
        return out;
    }

    /**
     * {@code pid} and every process descended from it, from each thread's {@code children} list (the kernel's
     * record of the processes a thread forked); far cheaper than reading every process of the machine. A process
     * whose parent ended was re-parented elsewhere and is not found.
     */
    public static List<Integer> descendants(int pid) {
        List<Integer> out = new ArrayList<>(List.of(pid));
        for (int i = 0; i < out.size() && out.size() < 100_000; i++) {
            try (var tasks = Files.list(Path.of("/proc/" + out.get(i) + "/task"))) {
                for (Path task : tasks.toList()) {
                    String children = Files.readString(task.resolve("children")).trim();
                    if (!children.isEmpty()) {
                        for (String c : children.split("\\s+")) {
                            out.add(Integer.parseInt(c));
                        }
                    }
                }
            } catch (IOException | RuntimeException e) {
                // the process ended meanwhile
            }
        }
        return out;
    }
}
