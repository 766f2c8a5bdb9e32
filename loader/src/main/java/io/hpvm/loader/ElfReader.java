package io.hpvm.loader;

import net.fornwall.jelf.ElfFile;
import net.fornwall.jelf.ElfSection;
import net.fornwall.jelf.ElfSectionHeader;
import net.fornwall.jelf.ElfSegment;
import net.fornwall.jelf.ElfSymbolTableSection;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads the parts of an x86-64 ELF64 file hpvm needs (headers, sections, symbols, program headers) through the jelf
 * library, and turns every parse failure into a {@link LoadException} naming the file.
 */
final class ElfReader {

    final Path path;
    final ElfFile elf;
    final List<Section> sections = new ArrayList<>();
    final List<Segment> segments = new ArrayList<>();

    private ElfReader(Path path, ElfFile elf) {
        this.path = path;
        this.elf = elf;
    }

    static ElfReader open(Path path, int... acceptedTypes) throws LoadException {
        if (!Files.isRegularFile(path)) {
            throw new LoadException(LoadException.Kind.BAD_FILE, path + ": no such file");
        }
        try (RandomAccessFile raf = new RandomAccessFile(path.toFile(), "r")) {
            MappedByteBuffer map = raf.getChannel().map(FileChannel.MapMode.READ_ONLY, 0, raf.length());
            return open(path, map, acceptedTypes);
        } catch (IOException e) {
            throw new LoadException(LoadException.Kind.BAD_FILE, path + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** Parses an ELF file held in memory; {@code path} only names it in messages. */
    static ElfReader open(Path path, ByteBuffer contents, int... acceptedTypes) throws LoadException {
        ElfFile elf;
        if (contents.limit() < 64 || contents.get(0) != 0x7f || contents.get(1) != 'E' || contents.get(2) != 'L'
            || contents.get(3) != 'F') {
            throw new LoadException(LoadException.Kind.BAD_FILE, path + ": not an ELF file");
        }
        try {
            elf = contents instanceof MappedByteBuffer m ? ElfFile.from(m) : ElfFile.from(toArray(contents));
        } catch (RuntimeException e) {
            throw new LoadException(LoadException.Kind.BAD_FILE, path + ": cannot read ELF file: " + e.getMessage(), e);
        }
        if (elf.is32Bits() || elf.e_machine != Elf.EM_X86_64) {
            throw new LoadException(LoadException.Kind.BAD_FILE,
                path + ": not an x86-64 ELF64 file (class " + (elf.is32Bits() ? "ELF32" : "ELF64") + ", e_machine "
                    + elf.e_machine + ")");
        }
        boolean typeOk = false;
        for (int t : acceptedTypes) {
            typeOk |= elf.e_type == t;
        }
        if (!typeOk) {
            throw new LoadException(LoadException.Kind.BAD_FILE,
                path + ": wrong ELF type " + typeName(elf.e_type) + " (expected " + typeNames(acceptedTypes) + ")");
        }
        ElfReader r = new ElfReader(path, elf);
        try {
            r.readSections();
            r.readSegments();
        } catch (RuntimeException e) {
            throw new LoadException(LoadException.Kind.BAD_FILE, path + ": malformed ELF file: " + e.getMessage(), e);
        }
        return r;
    }

    private void readSections() {
        int count = Short.toUnsignedInt(elf.e_shnum);
        for (int i = 0; i < count; i++) {
            ElfSection s = elf.getSection(i);
            ElfSectionHeader h = s.header;
            byte[] data = (h.sh_type == Elf.SHT_NOBITS || h.sh_type == 0) ? new byte[0] : s.getData();
            String name = h.getName();
            sections.add(new Section(i, name == null ? "" : name, h.sh_type, h.sh_flags, h.sh_addr, h.sh_offset,
                h.sh_size, h.sh_addralign, h.sh_link, h.sh_info, data));
        }
    }

    private void readSegments() {
        int count = Short.toUnsignedInt(elf.e_phnum);
        for (int i = 0; i < count; i++) {
            ElfSegment p = elf.getProgramHeader(i);
            segments.add(new Segment(p.p_type, p.p_flags, p.p_offset, p.p_vaddr, p.p_filesz, p.p_memsz, p.p_align));
        }
    }

    Section section(String name) {
        for (Section s : sections) {
            if (s.name().equals(name)) {
                return s;
            }
        }
        return null;
    }

    /** The symbols of the first section of the given type (SHT_SYMTAB or SHT_DYNSYM), or an empty list. */
    List<Symbol> symbols(int sectionType) throws LoadException {
        List<Symbol> out = new ArrayList<>();
        try {
            for (Section s : sections) {
                if (s.type() != sectionType) {
                    continue;
                }
                ElfSymbolTableSection table = (ElfSymbolTableSection) elf.getSection(s.index());
                String file = null;
                for (int i = 0; i < table.symbols.length; i++) {
                    net.fornwall.jelf.ElfSymbol e = table.symbols[i];
                    String name = e.getName();
                    name = name == null ? "" : name;
                    int at = name.indexOf('@');
                    if (at > 0) {
                        name = name.substring(0, at);
                    }
                    int type = e.getType();
                    int bind = e.getBinding();
                    if (type == Elf.STT_FILE) {
                        file = name;
                    }
                    out.add(new Symbol(i, name, e.st_value, e.st_size, type, bind, Short.toUnsignedInt(e.st_shndx),
                        bind == Elf.STB_LOCAL && type != Elf.STT_FILE ? file : null));
                }
                break;
            }
        } catch (RuntimeException e) {
            throw new LoadException(LoadException.Kind.BAD_FILE, path + ": malformed symbol table: " + e.getMessage(), e);
        }
        return out;
    }

    private static byte[] toArray(ByteBuffer b) {
        byte[] out = new byte[b.limit()];
        b.duplicate().position(0).get(out);
        return out;
    }

    static ByteBuffer le(byte[] data) {
        return ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static String typeNames(int[] types) {
        StringBuilder b = new StringBuilder();
        for (int t : types) {
            b.append(b.length() == 0 ? "" : " or ").append(typeName(t));
        }
        return b.toString();
    }

    static String typeName(int type) {
        return switch (type) {
            case Elf.ET_REL -> "ET_REL (relocatable object)";
            case Elf.ET_EXEC -> "ET_EXEC (executable)";
            case Elf.ET_DYN -> "ET_DYN (PIE executable or shared object)";
            default -> "e_type " + type;
        };
    }
}
