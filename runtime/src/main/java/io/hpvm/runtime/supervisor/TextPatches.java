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
    private final List<Patch> pending = new ArrayList<>();

    private record Patch(long address, byte[] bytes) {
    }

    /** Adds a segment's copy; call-site rewriting edits it in place, then calls {@link #edited}. */
    void addSegment(long start, byte[] bytes) {
        texts.put(start, bytes);
        dirty.put(start, new BitSet());
    }

    /** The start of the segment whose copy holds {@code [address, address + length)}, or null. */
    private Long segmentOf(long address, long length) {
        for (Map.Entry<Long, byte[]> t : texts.entrySet()) {
            long off = address - t.getKey();
            if (off >= 0 && off + length <= t.getValue().length) {
                return t.getKey();
            }
        }
        return null;
    }

    /** A copy of {@code size} bytes at {@code address} as the copies have them now, or null outside them. */
    byte[] bytes(long address, long size) {
        Long start = segmentOf(address, size);
        return start == null ? null : java.util.Arrays.copyOfRange(texts.get(start), (int) (address - start),
            (int) (address - start + size));
    }

    /** Notes that {@code [address, address + length)} of a copy was edited in place. */
    void edited(long address, int length) {
        Long start = segmentOf(address, length);
        if (start == null) {
            throw new IllegalArgumentException("0x" + Long.toHexString(address) + " is in no executable segment");
        }
        dirty.get(start).set(pageOf(start, address - start), pageOf(start, address - start + length - 1) + 1);
    }

    /**
     * Records {@code bytes} for {@code address}, applied to the copy (and written) by {@link #flush}: later reads of
     * the copies still see the code as it was before these patches (entry redirection plans every function from the
     * rewritten, not yet redirected, text).
     */
    void patch(long address, byte[] bytes) {
        pending.add(new Patch(address, bytes));
    }

    /** Index of the page holding byte {@code off} of the segment at {@code start} (pages of the worker's memory). */
    private static int pageOf(long start, long off) {
        return (int) (((start + off) / PAGE) - (start / PAGE));
    }

    /** Applies the pending patches and writes every run of edited pages into the (stopped) worker. */
    void flush(ProcessMemory mem) throws SystemException {
        flush(List.of(mem));
    }

    /** As {@link #flush(ProcessMemory)}, into several processes with the same text (forked copies). */
    void flush(List<ProcessMemory> mems) throws SystemException {
        for (Patch p : pending) {
            Long start = segmentOf(p.address(), p.bytes().length);
            if (start != null) {
                System.arraycopy(p.bytes(), 0, texts.get(start), (int) (p.address() - start), p.bytes().length);
            }
            edited(p.address(), p.bytes().length);
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
                byte[] run = java.util.Arrays.copyOfRange(text, (int) (from - start), (int) (to - start));
                for (ProcessMemory mem : mems) {
                    mem.write(from, run);
                }
                first = end;
            }
            pages.clear();
        }
    }
}
