package io.hpvm.loader;

/**
 * One entry of an ELF symbol table.
 *
 * @param index        index in its table
 * @param name         name, with any {@code @VERSION} suffix removed
 * @param value        st_value (an address in executables, a section offset in relocatable objects)
 * @param size         st_size
 * @param type         STT_*
 * @param bind         STB_*
 * @param sectionIndex st_shndx
 * @param file         the name of the STT_FILE entry this local symbol follows, or null
 */
public record Symbol(int index, String name, long value, long size, int type, int bind, int sectionIndex,
                     String file) {

    public boolean isDefined() {
        return sectionIndex != Elf.SHN_UNDEF;
    }

    public boolean isFunction() {
        return type == Elf.STT_FUNC || type == Elf.STT_GNU_IFUNC;
    }

    public boolean isLocal() {
        return bind == Elf.STB_LOCAL;
    }

    /** True for address ranges [value, value+size) that contain {@code address}. */
    public boolean covers(long address) {
        return address >= value && address < value + Math.max(size, 1);
    }
}
