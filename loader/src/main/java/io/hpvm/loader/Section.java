package io.hpvm.loader;

import java.nio.ByteBuffer;

/**
 * One section of an ELF file, with its contents (empty for SHT_NOBITS). The contents of an executable's or shared
 * library's sections are copied out of the mapped file only when first asked for: launch reads the symbol tables
 * of a program, not its 20 MB of code and debug information.
 */
public final class Section {

    private final int index;
    private final String name;
    private final int type;
    private final long flags;
    private final long address;
    private final long offset;
    private final long size;
    private final long alignment;
    private final int link;
    private final int info;
    /** The bytes, or null until {@link #data()} copies them from {@link #source}. */
    private volatile byte[] data;
    private final ByteBuffer source;

    public Section(int index, String name, int type, long flags, long address, long offset, long size,
                   long alignment, int link, int info, byte[] data) {
        this(index, name, type, flags, address, offset, size, alignment, link, info, data, null);
    }

    private Section(int index, String name, int type, long flags, long address, long offset, long size,
                    long alignment, int link, int info, byte[] data, ByteBuffer source) {
        this.index = index;
        this.name = name;
        this.type = type;
        this.flags = flags;
        this.address = address;
        this.offset = offset;
        this.size = size;
        this.alignment = alignment;
        this.link = link;
        this.info = info;
        this.data = data;
        this.source = source;
    }

    /**
     * A section whose contents are the {@code length} bytes at {@code at} of {@code file} (checked to lie inside
     * it by the caller), copied on first use.
     */
    static Section lazy(int index, String name, int type, long flags, long address, long offset, long size,
                        long alignment, int link, int info, ByteBuffer file, int at, int length) {
        return new Section(index, name, type, flags, address, offset, size, alignment, link, info, null,
            file.slice(at, length));
    }

    /** The contents (do not modify: the array is shared). */
    public byte[] data() {
        byte[] d = data;
        if (d == null) {
            d = new byte[source.limit()];
            source.get(0, d);
            data = d;
        }
        return d;
    }

    public int index() {
        return index;
    }

    public String name() {
        return name;
    }

    public int type() {
        return type;
    }

    public long flags() {
        return flags;
    }

    public long address() {
        return address;
    }

    public long offset() {
        return offset;
    }

    public long size() {
        return size;
    }

    public long alignment() {
        return alignment;
    }

    public int link() {
        return link;
    }

    public int info() {
        return info;
    }

    public boolean isAlloc() {
        return (flags & Elf.SHF_ALLOC) != 0;
    }

    public boolean isExecutable() {
        return (flags & Elf.SHF_EXECINSTR) != 0;
    }

    public boolean isTls() {
        return (flags & Elf.SHF_TLS) != 0;
    }

    /**
     * Writable data that lives on in the program: {@code .data}, {@code .bss} and friends. {@code .data.rel.ro*} is
     * marked writable only so the dynamic linker can relocate it; for a patch it is read-only data.
     */
    public boolean isWritableData() {
        return (flags & Elf.SHF_WRITE) != 0 && !name.startsWith(".data.rel.ro");
    }

    @Override
    public String toString() {
        return "section " + index + " (" + name + ", " + size + " bytes at " + Elf.hex(address) + ")";
    }
}
