package io.hpvm.runtime.session;

import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The {@code code} file: dispatcher stubs first, then the append-only arena where linked patches go. The worker
 * maps it read+exec; hpvm writes through its own read-write mapping. Code is only ever written into space no thread
 * has run yet (the arena is bump-allocated and never reused), so no running code is modified.
 */
public final class CodeRegion implements AutoCloseable {

    private final Path path;
    private final FileChannel channel;
    private final MappedByteBuffer map;
    private final long address;

    private CodeRegion(Path path, FileChannel channel, MappedByteBuffer map, long address) {
        this.path = path;
        this.channel = channel;
        this.map = map;
        this.address = address;
    }

    /** Creates the file with {@code size} bytes (sparse on tmpfs until written). */
    public static CodeRegion create(Path path, long size, long address) throws SystemException {
        try {
            FileChannel ch = FileChannel.open(path, java.util.Set.of(StandardOpenOption.CREATE_NEW,
                StandardOpenOption.READ, StandardOpenOption.WRITE), SessionDir.privateFile());
            return new CodeRegion(path, ch, ch.map(FileChannel.MapMode.READ_WRITE, 0, size), address);
        } catch (IOException e) {
            throw SystemException.io("create " + SessionRoot.shown(path), e);
        }
    }

    /** Opens the file of a session whose worker maps it at {@code address}. */
    public static CodeRegion open(Path path, long address) throws SystemException {
        try {
            FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            return new CodeRegion(path, ch, ch.map(FileChannel.MapMode.READ_WRITE, 0, ch.size()), address);
        } catch (IOException e) {
            throw SystemException.io("open " + SessionRoot.shown(path), e);
        }
    }

    /** Where the worker maps the region. */
    public long address() {
        return address;
    }

    public long size() {
        return map.capacity();
    }

    /** Copies {@code bytes} to worker address {@code at}, which must lie inside the region. */
    public void write(long at, byte[] bytes) {
        long off = at - address;
        if (off < 0 || off + bytes.length > map.capacity()) {
            throw new IndexOutOfBoundsException("0x" + Long.toHexString(at) + "+" + bytes.length + " is outside "
                + SessionRoot.shown(path) + " (0x" + Long.toHexString(address) + ", " + map.capacity() + " bytes)");
        }
        map.put((int) off, bytes);
    }

    public byte[] read(long at, int length) {
        byte[] out = new byte[length];
        map.get((int) (at - address), out);
        return out;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
