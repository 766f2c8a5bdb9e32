package io.hpvm.runtime.session;

import io.hpvm.runtime.linux.SystemException;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * The session file {@code sites}: for each patchable function (in slot order), where {@code hpvm run} rewrote the
 * program's text to reach it, which is what compaction rewrites again: the rel32 fields of its call sites
 * ({@code call}/{@code jmp}/{@code jcc} to its stub), and, when its entry was redirected, the patched bytes at the
 * entry with what they held before (the text as rewritten at launch, so a call site inside them still goes to its
 * stub when they are put back). Written once at launch; never changes afterwards.
 *
 * <p>Call sites inside another function's redirected entry are left out: those bytes became that function's
 * {@code jmp}, and their copy in its trampoline keeps going through the stub.
 */
public final class SiteTable {

    private static final long MAGIC = 0x4850564d53495445L; // "HPVMSITE"
    private static final int LAYOUT = 1;

    /**
     * One function's rewritten places.
     *
     * @param displacements addresses of the rel32 fields of its call sites (each instruction ends 4 bytes later)
     * @param patchAt       where its entry jump is (0 when the entry was not redirected)
     * @param original      the bytes at {@code patchAt} before the jump was written (empty when not redirected)
     */
    public record Entry(long[] displacements, long patchAt, byte[] original) {
        public boolean redirected() {
            return patchAt != 0;
        }
    }

    private final List<Entry> entries;

    public SiteTable(List<Entry> entries) {
        this.entries = List.copyOf(entries);
    }

    public Entry entry(int slot) {
        return entries.get(slot);
    }

    public int size() {
        return entries.size();
    }

    public void write(Path file) throws SystemException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeLong(MAGIC);
            out.writeInt(LAYOUT);
            out.writeInt(entries.size());
            for (Entry e : entries) {
                out.writeInt(e.displacements().length);
                for (long d : e.displacements()) {
                    out.writeLong(d);
                }
                out.writeLong(e.patchAt());
                out.writeByte(e.original().length);
                out.write(e.original());
            }
            out.flush();
            Files.write(file, bytes.toByteArray(), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw SystemException.io("write " + SessionRoot.shown(file), e);
        }
    }

    /** Reads the table; a file that is not one (or of another layout) is an error naming it. */
    public static SiteTable read(Path file) throws SystemException {
        try (DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(Files.newInputStream(file),
            1 << 16))) {
            if (in.readLong() != MAGIC || in.readInt() != LAYOUT) {
                throw new SystemException(SessionRoot.shown(file) + " is not a call-site table of this hpvm version");
            }
            int n = in.readInt();
            List<Entry> entries = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                long[] d = new long[in.readInt()];
                for (int k = 0; k < d.length; k++) {
                    d[k] = in.readLong();
                }
                long patchAt = in.readLong();
                byte[] original = new byte[in.readUnsignedByte()];
                in.readFully(original);
                entries.add(new Entry(d, patchAt, original));
            }
            return new SiteTable(entries);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new SystemException("session file " + SessionRoot.shown(file) + " is missing (a session started by an "
                + "hpvm without compaction): restart the worker under this hpvm to compact it", e);
        } catch (IOException e) {
            throw SystemException.io("read " + SessionRoot.shown(file), e);
        }
    }
}
