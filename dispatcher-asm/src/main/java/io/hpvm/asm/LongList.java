package io.hpvm.asm;

import java.util.Arrays;

/** A growable list of longs, unboxed (branch targets: millions in a large program). */
public final class LongList {

    private long[] values = new long[1 << 12];
    private int size;

    public void add(long v) {
        if (size == values.length) {
            values = Arrays.copyOf(values, size * 2);
        }
        values[size++] = v;
    }

    public int size() {
        return size;
    }

    public long get(int i) {
        if (i >= size) {
            throw new IndexOutOfBoundsException(i + " of " + size);
        }
        return values[i];
    }

    /** A copy of the values, in the order they were added. */
    public long[] toArray() {
        return Arrays.copyOf(values, size);
    }
}
