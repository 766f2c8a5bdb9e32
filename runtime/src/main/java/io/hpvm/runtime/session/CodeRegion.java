package io.hpvm.runtime.session;

import com.sun.jna.LastErrorException;
import com.sun.jna.Pointer;
import io.hpvm.runtime.linux.LibC;
import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The code region: dispatcher stubs first, then the append-only arena where linked patches go. The worker maps it
 * read+exec; hpvm writes through its own read-write view. Code is only ever written into space no thread has run
 * yet (the arena is bump-allocated and never reused), so no running code is modified.
 *
 * <p>It is a System V shared memory segment where the system allows one, else the session's {@code code} file (or a
 * memfd of the worker's, where the session root is noexec). The segment is there for profilers: perf names code in
 * an anonymous or {@code /SYSV} mapping from {@code /tmp/perf-PID.map}, but reads symbols of any file mapping (a
 * memfd included) from the file itself, and hpvm's code has none (docs/internals.md, "perf and gdb"). The
 * segment is marked for removal as soon as hpvm has attached it, so it goes away with the last process mapping it,
 * whatever ends them; Linux still attaches a marked segment by its id (the worker at launch, a swap later).
 */
public final class CodeRegion implements AutoCloseable {

    private final String shown;
    private final ByteBuffer map;
    private final long address;
    private final int shmId;
    private final AutoCloseable release;

    private CodeRegion(String shown, ByteBuffer map, long address, int shmId, AutoCloseable release) {
        this.shown = shown;
        this.map = map;
        this.address = address;
        this.shmId = shmId;
        this.release = release;
    }

    /** Creates the file with {@code size} bytes (sparse on tmpfs until written). */
    public static CodeRegion create(Path path, long size, long address) throws SystemException {
        try {
            FileChannel ch = FileChannel.open(path, java.util.Set.of(StandardOpenOption.CREATE_NEW,
                StandardOpenOption.READ, StandardOpenOption.WRITE), SessionDir.privateFile());
            return new CodeRegion(SessionRoot.shown(path), ch.map(FileChannel.MapMode.READ_WRITE, 0, size), address,
                -1, ch);
        } catch (IOException e) {
            throw SystemException.io("create " + SessionRoot.shown(path), e);
        }
    }

    /** Opens the file of a session whose worker maps it at {@code address}. */
    public static CodeRegion open(Path path, long address) throws SystemException {
        try {
            FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            return new CodeRegion(SessionRoot.shown(path), ch.map(FileChannel.MapMode.READ_WRITE, 0, ch.size()),
                address, -1, ch);
        } catch (IOException e) {
            throw SystemException.io("open " + SessionRoot.shown(path), e);
        }
    }

    /**
     * Creates a private System V segment of {@code size} bytes (owner read/write only), attaches it here and marks
     * it for removal at once: from then on it lives exactly as long as some process maps it.
     */
    public static CodeRegion createShared(long size, long address) throws SystemException {
        int id;
        try {
            id = LibC.INSTANCE.shmget(LibC.IPC_PRIVATE, size, LibC.IPC_CREAT | 0600);
        } catch (LastErrorException e) {
            throw SystemException.of("shmget of a " + size + "-byte System V segment for the code region",
                e.getErrorCode());
        }
        try {
            return attach(id, size, address);
        } finally {
            remove(id);
        }
    }

    /** Attaches segment {@code id}, which a session's worker maps at {@code address}. */
    public static CodeRegion openShared(int id, long address) throws SystemException {
        return attach(id, -1, address);
    }

    private static CodeRegion attach(int id, long size, long address) throws SystemException {
        long bytes = size >= 0 ? size : segmentSize(id);
        Pointer p;
        try {
            p = LibC.INSTANCE.shmat(id, null, 0);
        } catch (LastErrorException e) {
            throw SystemException.of("shmat of System V segment " + id + " (the code region)", e.getErrorCode());
        }
        return new CodeRegion("the code region (System V segment " + id + ")", p.getByteBuffer(0, bytes), address, id,
            () -> LibC.INSTANCE.shmdt(p));
    }

    /** The segment's size ({@code shm_segsz} of {@code IPC_STAT}: struct shmid_ds after its 48-byte ipc_perm). */
    private static long segmentSize(int id) throws SystemException {
        try (com.sun.jna.Memory ds = new com.sun.jna.Memory(128)) {
            LibC.INSTANCE.shmctl(id, LibC.IPC_STAT, ds);
            return ds.getLong(48);
        } catch (LastErrorException e) {
            throw SystemException.of("shmctl(IPC_STAT) of System V segment " + id + " (the code region)",
                e.getErrorCode());
        }
    }

    private static void remove(int id) {
        try {
            LibC.INSTANCE.shmctl(id, LibC.IPC_RMID, null);
        } catch (LastErrorException ignored) {
            // already removed
        }
    }

    /** Where the worker maps the region. */
    public long address() {
        return address;
    }

    public long size() {
        return map.capacity();
    }

    /** The System V segment's id, or -1 when the region is a file. */
    public int shmId() {
        return shmId;
    }

    /** Copies {@code bytes} to worker address {@code at}, which must lie inside the region. */
    public void write(long at, byte[] bytes) {
        long off = at - address;
        if (off < 0 || off + bytes.length > map.capacity()) {
            throw new IndexOutOfBoundsException("0x" + Long.toHexString(at) + "+" + bytes.length + " is outside "
                + shown + " (0x" + Long.toHexString(address) + ", " + map.capacity() + " bytes)");
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
        try {
            release.close();
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException(e);
        }
    }
}
