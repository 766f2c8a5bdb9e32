package io.hpvm.testing;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Makes broken variants of a real ELF relocatable object, the way a hostile tester (or a bad disk, or a broken
 * tool) would: random bit flips, truncation, and structure-aware edits of the ELF header, the section headers, the
 * symbol table, the relocations, the string tables and section contents, with values chosen to sit on the
 * boundaries a reader must check (0, 1, the file size, the section size, all ones, huge). Deterministic for a seed.
 */
public final class ObjectMutator {

    /** A mutant and what was done to it. */
    public record Mutant(byte[] bytes, String description) {
    }

    private static final int SHT_SYMTAB = 2;
    private static final int SHT_STRTAB = 3;
    private static final int SHT_RELA = 4;
    private static final int SHT_NOBITS = 8;

    private final byte[] original;
    /** Section headers: {name, type, flags, addr, offset, size, link, info, align, entsize, headerOffset}. */
    private final List<long[]> sections = new ArrayList<>();

    public ObjectMutator(byte[] original) {
        this.original = original.clone();
        ByteBuffer b = le(this.original);
        long shoff = b.getLong(0x28);
        int shnum = Short.toUnsignedInt(b.getShort(0x3c));
        for (int i = 0; i < shnum; i++) {
            long o = shoff + 64L * i;
            if (o + 64 > original.length) {
                break;
            }
            int at = (int) o;
            sections.add(new long[] {b.getInt(at), b.getInt(at + 4), b.getLong(at + 8), b.getLong(at + 16),
                b.getLong(at + 24), b.getLong(at + 32), b.getInt(at + 40), b.getInt(at + 44), b.getLong(at + 48),
                b.getLong(at + 56), at});
        }
    }

    /** One mutant, chosen by {@code seed}. */
    public Mutant mutate(long seed) {
        Random r = new Random(seed);
        byte[] d = original.clone();
        ByteBuffer b = le(d);
        int kind = r.nextInt(10);
        switch (kind) {
            case 0 -> {
                int flips = 1 + r.nextInt(8);
                for (int i = 0; i < flips; i++) {
                    d[r.nextInt(d.length)] ^= (byte) (1 << r.nextInt(8));
                }
                return new Mutant(d, flips + " bit flips");
            }
            case 1 -> {
                int len = r.nextInt(d.length);
                return new Mutant(Arrays.copyOf(d, len), "truncated to " + len + " bytes");
            }
            case 2 -> {
                int[] offsets = {0x04, 0x05, 0x06, 0x10, 0x12, 0x18, 0x20, 0x28, 0x34, 0x36, 0x38, 0x3a, 0x3c, 0x3e};
                int off = offsets[r.nextInt(offsets.length)];
                long v = boundary(r, d.length);
                put(b, off, off <= 0x06 ? 1 : off >= 0x18 && off <= 0x28 ? 8 : 2, v);
                return new Mutant(d, "ELF header field at " + hex(off) + " := " + hex(v));
            }
            case 3 -> {
                if (sections.isEmpty()) {
                    break;
                }
                long[] s = sections.get(r.nextInt(sections.size()));
                int[][] fields = {{0, 4}, {4, 4}, {8, 8}, {16, 8}, {24, 8}, {32, 8}, {40, 4}, {44, 4}, {48, 8},
                    {56, 8}};
                int[] f = fields[r.nextInt(fields.length)];
                long v = boundary(r, Math.max(s[5], d.length));
                put(b, (int) s[10] + f[0], f[1], v);
                return new Mutant(d, "section header " + sections.indexOf(s) + " field +" + f[0] + " := " + hex(v));
            }
            case 4 -> {
                long at = entry(r, SHT_SYMTAB);
                if (at < 0) {
                    break;
                }
                int[][] fields = {{0, 4}, {4, 1}, {5, 1}, {6, 2}, {8, 8}, {16, 8}};
                int[] f = fields[r.nextInt(fields.length)];
                long v = f[0] == 6 ? new long[] {0, 1, 0xfff1, 0xfff2, 0xffff, 0xff00, 200}[r.nextInt(7)]
                    : boundary(r, d.length);
                put(b, (int) at + f[0], f[1], v);
                return new Mutant(d, "symbol at " + hex(at) + " field +" + f[0] + " := " + hex(v));
            }
            case 5, 6 -> {
                long at = entry(r, SHT_RELA);
                if (at < 0) {
                    break;
                }
                int[][] fields = {{0, 8}, {8, 4}, {12, 4}, {16, 8}};
                int[] f = fields[r.nextInt(fields.length)];
                long v = f[0] == 8 ? new long[] {0, 1, 2, 4, 9, 10, 11, 12, 19, 22, 24, 26, 32, 36, 41, 42, 43, 999}
                    [r.nextInt(18)] : f[0] == 16 ? new long[] {-4, 0, 4, 0x1000, -0x1000, 1L << 33, -(1L << 33),
                    Long.MIN_VALUE, Long.MAX_VALUE, r.nextInt(4096)}[r.nextInt(10)] : boundary(r, d.length);
                put(b, (int) at + f[0], f[1], v);
                return new Mutant(d, "relocation at " + hex(at) + " field +" + f[0] + " := " + hex(v));
            }
            case 7 -> {
                long[] s = pick(r, SHT_STRTAB);
                if (s == null) {
                    break;
                }
                int n = 1 + r.nextInt(4);
                for (int i = 0; i < n; i++) {
                    long at = s[4] + r.nextInt((int) s[5]);
                    if (at < d.length) {
                        d[(int) at] = new byte[] {0, '\n', 'A', (byte) 0xff, 0x1b}[r.nextInt(5)];
                    }
                }
                return new Mutant(d, n + " string table bytes");
            }
            default -> {
                List<long[]> withData = sections.stream().filter(s -> s[1] != 0 && s[1] != SHT_NOBITS && s[5] > 0
                    && s[4] + s[5] <= d.length).toList();
                if (withData.isEmpty()) {
                    break;
                }
                long[] s = withData.get(r.nextInt(withData.size()));
                int n = 1 + r.nextInt(4);
                for (int i = 0; i < n; i++) {
                    d[(int) (s[4] + r.nextInt((int) s[5]))] = (byte) r.nextInt(256);
                }
                return new Mutant(d, n + " bytes of section " + sections.indexOf(s) + " contents");
            }
        }
        d[r.nextInt(d.length)] ^= 0x10;
        return new Mutant(d, "one bit flip");
    }

    /** Values that sit where a reader's checks are: small, around the file size, all ones, sign bits, huge. */
    private static long boundary(Random r, long size) {
        long[] v = {0, 1, 2, 0x40, size - 1, size, size + 1, size * 2, 0xffffL, 0xffff_ffffL, 0x7fff_ffffL,
            0x8000_0000L, -1L, Long.MIN_VALUE, Long.MAX_VALUE, 1L << 40, r.nextLong()};
        return v[r.nextInt(v.length)];
    }

    private long[] pick(Random r, int type) {
        List<long[]> of = sections.stream().filter(s -> s[1] == type && s[5] > 0).toList();
        return of.isEmpty() ? null : of.get(r.nextInt(of.size()));
    }

    /** The file offset of a random 24-byte entry of a section of {@code type}, or -1. */
    private long entry(Random r, int type) {
        long[] s = pick(r, type);
        if (s == null || s[5] < 24 || s[4] + s[5] > original.length) {
            return -1;
        }
        return s[4] + 24L * r.nextInt((int) (s[5] / 24));
    }

    private static void put(ByteBuffer b, int at, int width, long v) {
        if (at < 0 || at + width > b.limit()) {
            return;
        }
        switch (width) {
            case 1 -> b.put(at, (byte) v);
            case 2 -> b.putShort(at, (short) v);
            case 4 -> b.putInt(at, (int) v);
            default -> b.putLong(at, v);
        }
    }

    private static ByteBuffer le(byte[] d) {
        return ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
