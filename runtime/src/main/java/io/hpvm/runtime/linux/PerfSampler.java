package io.hpvm.runtime.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.Pointer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;

/**
 * Samples where some processes' threads are in user code, without stopping them: one {@code perf_event_open}
 * software event per thread (the thread's own CPU clock, {@code PERF_COUNT_SW_TASK_CLOCK}, user mode only) writes the
 * instruction pointer into a ring buffer shared with this process every {@code 1/hz} seconds of the thread's running
 * time. Nothing is injected and nothing waits: the cost to the worker is the kernel's timer interrupt, about a
 * microsecond per sample (bench: "cost of sampling").
 *
 * <p>An event with {@code inherit} cannot be mapped when it follows one task on every CPU, so threads are followed
 * one by one: {@link #rescan} opens events for threads that appeared since (call it before each {@link #drain}).
 * Needs what {@code perf record -p} needs: the same user (ptrace read access) and
 * {@code kernel.perf_event_paranoid} at most 2, or root.
 */
public final class PerfSampler implements AutoCloseable {

    private static final int SYS_PERF_EVENT_OPEN = 298;
    private static final int PERF_TYPE_SOFTWARE = 1;
    private static final int PERF_COUNT_SW_TASK_CLOCK = 1;
    private static final int PERF_SAMPLE_IP = 1;
    private static final int PERF_SAMPLE_TID = 2;
    private static final long EXCLUDE_KERNEL = 1L << 5;
    private static final long EXCLUDE_HV = 1L << 6;
    private static final int PERF_FLAG_FD_CLOEXEC = 8;
    private static final int PERF_RECORD_LOST = 2;
    private static final int PERF_RECORD_SAMPLE = 9;
    private static final int ATTR_SIZE = 64; // PERF_ATTR_SIZE_VER0: every field used here
    private static final int PAGE = 4096;
    // 16 KiB per thread: 0.68 s of samples at 1 kHz between drains; small, because an unprivileged user may lock
    // only perf_event_mlock_kb (516 KiB) per CPU for all its rings.
    private static final int DATA_PAGES = 4;
    private static final int PROT_READ = 1;
    private static final int PROT_WRITE = 2;
    private static final int MAP_SHARED = 1;
    private static final int EACCES = 13;
    private static final int EPERM = 1;
    private static final int ESRCH = 3;
    private static final int ENOENT = 2;
    private static final int ENOSYS = 38;

    /** One thread's event and its ring buffer. */
    private record Ring(int pid, int tid, int fd, Pointer base) {
    }

    private final Collection<Integer> pids;
    private final int hz;
    private final Map<Integer, Ring> rings = new HashMap<>();
    private long samples;
    private long lost;

    private PerfSampler(Collection<Integer> pids, int hz) {
        this.pids = List.copyOf(pids);
        this.hz = hz;
    }

    /** Starts sampling every thread of {@code pids} at {@code hz} samples per second of each thread's CPU time. */
    public static PerfSampler start(Collection<Integer> pids, int hz) throws SystemException {
        PerfSampler s = new PerfSampler(pids, hz);
        try {
            s.rescan();
        } catch (SystemException | RuntimeException e) {
            s.close();
            throw e;
        }
        return s;
    }

    /** Opens events for threads that appeared since the last scan, and closes those of threads that ended. */
    public void rescan() throws SystemException {
        for (int pid : pids) {
            for (int tid : ProcFs.threads(pid)) {
                if (!rings.containsKey(tid)) {
                    Ring r = open(pid, tid);
                    if (r != null) {
                        rings.put(tid, r);
                    }
                }
            }
        }
        for (Iterator<Ring> it = rings.values().iterator(); it.hasNext(); ) {
            Ring r = it.next();
            if (!Files.exists(Path.of("/proc/" + r.pid() + "/task/" + r.tid()))) {
                drain(r, ip -> { });
                release(r);
                it.remove();
            }
        }
    }

    private Ring open(int pid, int tid) throws SystemException {
        Memory attr = new Memory(ATTR_SIZE);
        attr.clear();
        attr.setInt(0, PERF_TYPE_SOFTWARE);
        attr.setInt(4, ATTR_SIZE);
        attr.setLong(8, PERF_COUNT_SW_TASK_CLOCK);
        attr.setLong(16, 1_000_000_000L / hz); // sample_period, in nanoseconds of the thread's CPU time
        attr.setLong(24, PERF_SAMPLE_IP | PERF_SAMPLE_TID);
        attr.setLong(40, EXCLUDE_KERNEL | EXCLUDE_HV);
        int fd;
        try {
            fd = (int) LibC.INSTANCE.syscall(SYS_PERF_EVENT_OPEN, attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        } catch (LastErrorException e) {
            int errno = e.getErrorCode();
            if (errno == ESRCH) {
                return null; // the thread ended meanwhile
            }
            throw SystemException.of("perf_event_open(task clock, thread " + tid + " of pid " + pid + ")", errno,
                meaning(errno));
        }
        long size = (long) (1 + DATA_PAGES) * PAGE;
        try {
            Pointer base = LibC.INSTANCE.mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            return new Ring(pid, tid, fd, base);
        } catch (LastErrorException e) {
            LibC.INSTANCE.close(fd);
            throw SystemException.of("mmap of the perf ring buffer of thread " + tid, e.getErrorCode(),
                e.getErrorCode() == EPERM ? ": past the per-user limit kernel.perf_event_mlock_kb" : "");
        }
    }

    private static String meaning(int errno) {
        if (errno == EACCES || errno == EPERM) {
            String level;
            try {
                level = Files.readString(Path.of("/proc/sys/kernel/perf_event_paranoid")).trim();
            } catch (java.io.IOException e) {
                level = "unknown";
            }
            return ": perf events are forbidden here (kernel.perf_event_paranoid is " + level + "; sampling "
                + "another process of the same user needs 2 or less, or root: sudo sysctl "
                + "kernel.perf_event_paranoid=2), or the worker belongs to another user";
        }
        if (errno == ENOENT || errno == ENOSYS) {
            return ": this kernel has no software perf events (CONFIG_PERF_EVENTS)";
        }
        return "";
    }

    /** Hands every instruction pointer sampled since the last drain to {@code sink}. */
    public void drain(LongConsumer sink) {
        for (Ring r : rings.values()) {
            drain(r, sink);
        }
    }

    private void drain(Ring r, LongConsumer sink) {
        Pointer meta = r.base();
        long head = meta.getLong(1024); // data_head: read before the data (x86 does not reorder loads)
        long tail = meta.getLong(1032);
        long capacity = (long) DATA_PAGES * PAGE;
        if (head - tail > capacity) {
            tail = head - capacity; // cannot happen while the tail is written back: the kernel drops instead
        }
        byte[] data = new byte[(int) (head - tail)];
        long from = tail % capacity;
        int first = (int) Math.min(data.length, capacity - from);
        meta.read(PAGE + from, data, 0, first);
        if (first < data.length) {
            meta.read(PAGE, data, first, data.length - first);
        }
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(data).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        while (b.remaining() >= 8) {
            int at = b.position();
            int type = b.getInt();
            b.getShort();
            int size = b.getShort() & 0xffff;
            if (size < 8 || at + size > data.length) {
                break;
            }
            if (type == PERF_RECORD_SAMPLE) {
                sink.accept(b.getLong());
                samples++;
            } else if (type == PERF_RECORD_LOST) {
                b.getLong();
                lost += b.getLong();
            }
            b.position(at + size);
        }
        meta.setLong(1032, head); // data_tail: the space is the kernel's again
    }

    /** Threads followed now. */
    public int threads() {
        return rings.size();
    }

    /** Samples drained so far. */
    public long samples() {
        return samples;
    }

    /** Samples the kernel dropped because a ring was full. */
    public long lost() {
        return lost;
    }

    /** The sampling rate per thread. */
    public int hz() {
        return hz;
    }

    private static void release(Ring r) {
        LibC.INSTANCE.munmap(r.base(), (long) (1 + DATA_PAGES) * PAGE);
        LibC.INSTANCE.close(r.fd());
    }

    @Override
    public void close() {
        rings.values().forEach(PerfSampler::release);
        rings.clear();
    }
}
