package io.hpvm.loader;

import java.nio.ByteBuffer;

/** LEB128 numbers, as DWARF writes them (DWARF 5 section 7.6). */
final class Leb {

    private Leb() {
    }

    /** An unsigned LEB128 number at {@code b}'s position (bits past 64 are dropped). */
    static long uleb(ByteBuffer b) {
        long result = 0;
        int shift = 0;
        while (true) {
            int x = Byte.toUnsignedInt(b.get());
            if (shift < 64) {
                result |= (long) (x & 0x7f) << shift;
            }
            if ((x & 0x80) == 0) {
                return result;
            }
            shift += 7;
        }
    }

    /** A signed LEB128 number at {@code b}'s position. */
    static long sleb(ByteBuffer b) {
        long result = 0;
        int shift = 0;
        int x;
        do {
            x = Byte.toUnsignedInt(b.get());
            if (shift < 64) {
                result |= (long) (x & 0x7f) << shift;
            }
            shift += 7;
        } while ((x & 0x80) != 0);
        if (shift < 64 && (x & 0x40) != 0) {
            result |= -1L << shift;
        }
        return result;
    }
}
