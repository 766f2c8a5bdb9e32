package io.hpvm.testing;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Precise edits of one field of a real relocatable object (a symbol's value or size, a relocation's offset or
 * addend), to make the exact malformed object a test is about. It reads the headers itself, independently of the
 * loader under test.
 */
public final class ElfEdit {

    private final byte[] bytes;
    private final ByteBuffer b;

    public ElfEdit(Path object) {
        try {
            this.bytes = Files.readAllBytes(object);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        this.b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    private int sectionHeader(int index) {
        return (int) (b.getLong(0x28) + 64L * index);
    }

    private int sectionCount() {
        return Short.toUnsignedInt(b.getShort(0x3c));
    }

    private int type(int index) {
        return b.getInt(sectionHeader(index) + 4);
    }

    private long offset(int index) {
        return b.getLong(sectionHeader(index) + 24);
    }

    private long size(int index) {
        return b.getLong(sectionHeader(index) + 32);
    }

    private int link(int index) {
        return b.getInt(sectionHeader(index) + 40);
    }

    private String string(int strtab, int at) {
        int start = (int) offset(strtab) + at;
        int end = start;
        while (bytes[end] != 0) {
            end++;
        }
        return new String(bytes, start, end - start, StandardCharsets.UTF_8);
    }

    /** The file offset of the symbol table entry of {@code name}. */
    private int symbol(String name) {
        for (int s = 0; s < sectionCount(); s++) {
            if (type(s) == 2) {
                for (int at = (int) offset(s); at < offset(s) + size(s); at += 24) {
                    if (string(link(s), b.getInt(at)).equals(name)) {
                        return at;
                    }
                }
            }
        }
        throw new AssertionError("no symbol " + name);
    }

    /** The file offset of relocation {@code n} of the relocation section that applies to section {@code name}. */
    private int relocation(String name, int n) {
        int shstrndx = Short.toUnsignedInt(b.getShort(0x3e));
        for (int s = 0; s < sectionCount(); s++) {
            if (type(s) == 4 && string(shstrndx, b.getInt(sectionHeader(s))).equals(".rela" + name)) {
                return (int) offset(s) + 24 * n;
            }
        }
        throw new AssertionError("no relocations for " + name);
    }

    public ElfEdit symbolValue(String name, long value) {
        b.putLong(symbol(name) + 8, value);
        return this;
    }

    public ElfEdit symbolSize(String name, long size) {
        b.putLong(symbol(name) + 16, size);
        return this;
    }

    public ElfEdit relocationOffset(String section, int n, long offset) {
        b.putLong(relocation(section, n), offset);
        return this;
    }

    public ElfEdit relocationAddend(String section, int n, long addend) {
        b.putLong(relocation(section, n) + 16, addend);
        return this;
    }

    /** The first {@code length} bytes only (a truncated file). */
    public ElfEdit truncate(int length) {
        b.limit(length);
        return this;
    }

    public Path write(Path to) {
        try {
            return Files.write(to, java.util.Arrays.copyOf(bytes, b.limit()));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
