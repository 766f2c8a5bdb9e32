package io.hpvm.runtime.profile;

import com.sun.jna.LastErrorException;
import io.hpvm.runtime.linux.FileSystem;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.SessionDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Names hpvm's code for perf: {@code /tmp/perf-PID.map}, the map perf reads for code in an anonymous or System V
 * mapping (the code region, see {@link io.hpvm.runtime.session.CodeRegion}), one line {@code START SIZE NAME} per
 * stub, trampoline, version and thunk ({@code fee [hpvm v2]}, {@link CodeMap#added()}).
 *
 * <p>Only ever appended to: the arena never reuses an address, so a line stays true for the session's life, and a
 * program that writes its own map (a JIT such as a JVM or node under {@code hpvm attach}) keeps its lines and its
 * open descriptor. A map left by an earlier process of the same pid is emptied first when hpvm started the worker.
 * The file stays when the worker ends, as JITs leave theirs, so {@code perf report} can name samples afterwards.
 */
public final class PerfMap {

    private final int pid;
    private final boolean started;
    /** Per process of the session: the starts of the code its map names already. */
    private final Map<Integer, Set<Long>> named = new HashMap<>();
    private String problem;

    /** @param started true when hpvm started the process (any map of its pid is an earlier process's) */
    public PerfMap(int pid, boolean started) {
        this.pid = pid;
        this.started = started;
    }

    /** Where perf looks for the map of process {@code pid}. */
    public static Path path(int pid) {
        return Path.of("/tmp/perf-" + pid + ".map");
    }

    /**
     * Appends a line for every piece of code in {@code session} not named yet, in the map of the worker and of
     * each process it forked that runs the session's code (perf looks a sample up by the pid it came from); returns
     * why a map could not be written (once: later calls return null and write nothing), or null.
     */
    public String update(SessionDir session) {
        if (problem != null) {
            return null;
        }
        try {
            List<CodeMap.Named> code = CodeMap.of(session).added();
            Set<Integer> processes = new java.util.TreeSet<>(session.processes());
            processes.add(pid);
            for (int p : processes) {
                boolean fresh = !named.containsKey(p);
                Set<Long> done = named.computeIfAbsent(p, k -> new HashSet<>());
                StringBuilder lines = new StringBuilder();
                for (CodeMap.Named n : code) {
                    if (done.add(n.start())) {
                        lines.append(Long.toHexString(n.start())).append(' ')
                            .append(Long.toHexString(n.end() - n.start())).append(' ').append(n.name()).append('\n');
                    }
                }
                if (lines.length() > 0) {
                    append(p, fresh && started, lines.toString().getBytes(StandardCharsets.UTF_8));
                }
            }
            return null;
        } catch (SystemException | RuntimeException e) {
            problem = "/tmp/perf-PID.map not written: " + e.getMessage();
            return problem;
        }
    }

    /**
     * Appends to the map of process {@code p} (emptied first when {@code truncate}): never through a symbolic link,
     * never into another user's file (perf would ignore it, and in {@code /tmp} anyone may have made it).
     */
    private static void append(int p, boolean truncate, byte[] bytes) throws SystemException {
        String file = path(p).toString();
        int flags = LibC.O_WRONLY | LibC.O_CREAT | LibC.O_APPEND | LibC.O_CLOEXEC | FileSystem.O_NOFOLLOW;
        int fd;
        try {
            fd = LibC.INSTANCE.open(file, flags, 0644);
        } catch (LastErrorException e) {
            throw SystemException.of("open(" + file + ")", e.getErrorCode());
        }
        try {
            FileSystem.Stat st = FileSystem.fstat(fd, file);
            if (st.uid() != FileSystem.uid() || (st.mode() & FileSystem.S_IFMT) != FileSystem.S_IFREG) {
                throw new SystemException(file + " is " + st.kind() + " of " + FileSystem.userName(st.uid()));
            }
            if (truncate) {
                LibC.INSTANCE.ftruncate(fd, 0);
            }
            for (int off = 0; off < bytes.length; ) {
                byte[] rest = off == 0 ? bytes : java.util.Arrays.copyOfRange(bytes, off, bytes.length);
                off += (int) LibC.INSTANCE.write(fd, rest, rest.length);
            }
        } catch (LastErrorException e) {
            throw SystemException.of("write(" + file + ")", e.getErrorCode());
        } finally {
            LibC.INSTANCE.close(fd);
        }
    }
}
