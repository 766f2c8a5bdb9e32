package io.hpvm.runtime.supervisor;

import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The worker's executable segments as launch reads and rewrites them: a copy of each, the edits made to it, and one
 * write per run of changed pages at the end. Writing each rewritten call site on its own cost one {@code pwrite}
 * of {@code /proc/PID/mem} per site: 164,912 for gcc's cc1, about a second of its launch. Pages without an edit are
 * never written, so they stay shared with every other process running the same executable.
 */
final class TextPatches {

    private static final int PAGE = 4096;

    /** Segment start -> the segment's bytes as the worker will have them. */
    private final Map<Long, byte[]> texts = new HashMap<>();
    private final Map<Long, BitSet> dirty = new HashMap<>();
    private final List<Object[]> pending = new ArrayList<>(); // {Long address, byte[] bytes}

    void addSegment(long start, byte[] bytes) {
        texts.put(start, bytes);
        dirty.put(start, new BitSet());
    }

    /** The copies, segment start -> bytes (call-site rewriting edits them in place, then calls {@link #edited}). */
    Map<Long, byte[]> texts() {
        return texts;
    }

    /** A copy of {@code size} bytes at {@code address} as the copies have them now, or null outside them. */
    byte[] bytes(long address, long size) {
        for (Map.Entry<Long, byte[]> t : texts.entrySet()) {
            long off = address - t.getKey();
            if (off >= 0 && off + size <= t.getValue().length) {
                return java.util.Arrays.copyOfRange(t.getValue(), (int) off, (int) (off + size));
            }
        }
        return null;
    }

    /** Notes that {@code [address, address + length)} of a copy was edited in place. */
    void edited(long address, int length) {
        for (Map.Entry<Long, byte[]> t : texts.entrySet()) {
            long off = address - t.getKey();
            if (off >= 0 && off + length <= t.getValue().length) {
                BitSet pages = dirty.get(t.getKey());
                pages.set(pageOf(t.getKey(), off), pageOf(t.getKey(), off + length - 1) + 1);
                return;
            }
        }
        throw new IllegalArgumentException("0x" + Long.toHexString(address) + " is in no executable segment");
    }

    /**
     * Records {@code bytes} for {@code address}, applied to the copy (and written) by {@link #flush}: later reads of
     * the copies still see the code as it was before these patches (entry redirection plans every function from the
     * rewritten, not yet redirected, text).
     */
    void patch(long address, byte[] bytes) {
        pending.add(new Object[] {address, bytes});
    }

    /** Index of the page holding byte {@code off} of the segment at {@code start} (pages of the worker's memory). */
    private static int pageOf(long start, long off) {
        return (int) (((start + off) / PAGE) - (start / PAGE));
    }

    /** Applies the pending patches and writes every run of edited pages into the (stopped) worker. */
    void flush(ProcessMemory mem) throws SystemException {
        for (Object[] p : pending) {
            long address = (Long) p[0];
            byte[] bytes = (byte[]) p[1];
            for (Map.Entry<Long, byte[]> t : texts.entrySet()) {
                long off = address - t.getKey();
                if (off >= 0 && off + bytes.length <= t.getValue().length) {
                    System.arraycopy(bytes, 0, t.getValue(), (int) off, bytes.length);
                    break;
                }
            }
            edited(address, bytes.length);
        }
        pending.clear();
        for (Map.Entry<Long, byte[]> t : texts.entrySet()) {
            long start = t.getKey();
            byte[] text = t.getValue();
            BitSet pages = dirty.get(start);
            for (int first = pages.nextSetBit(0); first >= 0; first = pages.nextSetBit(first)) {
                int end = pages.nextClearBit(first);
                long from = Math.max(start, (start / PAGE + first) * PAGE);
                long to = Math.min(start + text.length, (start / PAGE + end) * PAGE);
                mem.write(from, java.util.Arrays.copyOfRange(text, (int) (from - start), (int) (to - start)));
                first = end;
            }
            pages.clear();
        }
    }
}
