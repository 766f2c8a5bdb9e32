package io.hpvm.runtime.session;

import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The {@code slots} file: a 64-byte header (magic "HPVMSLOT", layout version, slot count) and one 8-byte slot per
 * patchable function at {@code 64 + index*8}. The worker maps it read-only and every stub jumps through its slot;
 * hpvm maps it read-write. A swap is one aligned 8-byte release store here.
 */
public final class SlotTable implements AutoCloseable {

    public static final int HEADER = 64;
    private static final byte[] MAGIC = "HPVMSLOT".getBytes(StandardCharsets.US_ASCII);
    private static final int LAYOUT_VERSION = 1;
    private static final VarHandle LONGS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final FileChannel channel;
    private final MappedByteBuffer map;
    private final int count;

    private SlotTable(Path path, FileChannel channel, MappedByteBuffer map, int count) {
        this.path = path;
        this.channel = channel;
        this.map = map;
        this.count = count;
    }

    /** File size for {@code count} slots, a whole number of pages. */
    public static long fileSize(int count) {
        return (HEADER + 8L * count + 4095) & ~4095L;
    }

    public static SlotTable create(Path path, int count) throws SystemException {
        try {
            FileChannel ch = FileChannel.open(path, java.util.Set.of(StandardOpenOption.CREATE_NEW,
                StandardOpenOption.READ, StandardOpenOption.WRITE), SessionDir.privateFile());
            MappedByteBuffer m = ch.map(FileChannel.MapMode.READ_WRITE, 0, fileSize(count));
            m.order(ByteOrder.LITTLE_ENDIAN);
            m.put(0, MAGIC);
            m.putInt(8, LAYOUT_VERSION);
            m.putInt(12, count);
            return new SlotTable(path, ch, m, count);
        } catch (IOException e) {
            throw SystemException.io("create " + SessionRoot.shown(path), e);
        }
    }

    public static SlotTable open(Path path) throws SystemException {
        try {
            FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            MappedByteBuffer m = ch.map(FileChannel.MapMode.READ_WRITE, 0, ch.size());
            m.order(ByteOrder.LITTLE_ENDIAN);
            byte[] magic = new byte[8];
            m.get(0, magic);
            if (!java.util.Arrays.equals(magic, MAGIC) || m.getInt(8) != LAYOUT_VERSION) {
                throw new SystemException(SessionRoot.shown(path) + " is not an hpvm slot table of layout " + LAYOUT_VERSION);
            }
            return new SlotTable(path, ch, m, m.getInt(12));
        } catch (IOException e) {
            throw SystemException.io("open " + SessionRoot.shown(path), e);
        }
    }

    public int count() {
        return count;
    }

    /** Offset of slot {@code index} in the file (and in the worker's mapping). */
    public static long offset(int index) {
        return HEADER + 8L * index;
    }

    public long get(int index) {
        return (long) LONGS.getAcquire(map, (int) offset(checked(index)));
    }

    /** The swap itself: calls that start after this returns run {@code target}. */
    public void setRelease(int index, long target) {
        LONGS.setRelease(map, (int) offset(checked(index)), target);
    }

    private int checked(int index) {
        if (index < 0 || index >= count) {
            throw new IndexOutOfBoundsException("slot " + index + " of " + count + " in " + SessionRoot.shown(path));
        }
        return index;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
