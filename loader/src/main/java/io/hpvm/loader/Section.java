package io.hpvm.loader;

/**
 * One section of an ELF file, with its contents (empty for SHT_NOBITS).
 */
public record Section(int index, String name, int type, long flags, long address, long offset, long size,
                      long alignment, int link, int info, byte[] data) {

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
}
