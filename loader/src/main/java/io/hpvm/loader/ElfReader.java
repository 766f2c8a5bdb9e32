package io.hpvm.loader;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads the parts of an x86-64 ELF64 file hpvm needs: the header, section headers with their contents, program
 * headers and symbol tables. Patches come from users and from tools that may be broken or hostile, so every offset,
 * size, count and index is checked against the file's own bounds before it is used, and every failure is a
 * {@link LoadException} of kind BAD_FILE whose one-line message says what is wrong and where ("section header table
 * at offset 0x13a0 (12 entries of 64 bytes) lies past the end of the file (1256 bytes): the file is truncated").
 * Nothing else escapes: a malformed file never surfaces as a Java runtime exception.
 *
 * <p>Reference: the System V gABI, "Object Files" (ELF header, sections, symbol table), and the x86-64 psABI.
 */
final class ElfReader {

    /** hpvm reads files into memory (a Java array or mapping is at most 2 GiB). */
    static final long MAX_FILE_SIZE = Integer.MAX_VALUE;

    static final int EHDR_SIZE = 64;
    static final int SHDR_SIZE = 64;
    static final int PHDR_SIZE = 56;
    static final int SYM_SIZE = 24;
    static final int RELA_SIZE = 24;
    static final int SHT_STRTAB = 3;
    static final int SHN_LORESERVE = 0xff00;
    static final int SHN_XINDEX = 0xffff;

    final Path path;
    final int type;
    final long entry;
    final List<Section> sections = new ArrayList<>();
    final List<Segment> segments = new ArrayList<>();
    private final ByteBuffer file;

    /** The file's bytes as read (a view: position 0, limit the file's size). */
    ByteBuffer contents() {
        return file.duplicate().position(0);
    }

    private ElfReader(Path path, ByteBuffer file, int type, long entry) {
        this.path = path;
        this.file = file;
        this.type = type;
        this.entry = entry;
    }

    static ElfReader open(Path path, int... acceptedTypes) throws LoadException {
        checkRegularFile(path);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size > MAX_FILE_SIZE) {
                throw bad(path, "is " + size + " bytes; hpvm reads ELF files of at most 2 GiB");
            }
            ByteBuffer contents = size < (1 << 20) ? readFully(ch, (int) size)
                : ch.map(FileChannel.MapMode.READ_ONLY, 0, size);
            return open(path, contents, acceptedTypes);
        } catch (AccessDeniedException e) {
            throw bad(path, "cannot read it: permission denied");
        } catch (IOException e) {
            throw bad(path, "cannot read it: " + describe(e));
        }
    }

    /** A path names a regular file (after symbolic links), or the error says what it is instead. */
    private static void checkRegularFile(Path path) throws LoadException {
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(path, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw bad(path, "no such file");
        } catch (AccessDeniedException e) {
            throw bad(path, "cannot read it: permission denied (on the file or a directory above it)");
        } catch (IOException e) {
            throw bad(path, "cannot read it: " + describe(e));
        }
        if (a.isDirectory()) {
            throw bad(path, "is a directory, not an ELF file");
        }
        if (!a.isRegularFile()) {
            String what = "a special file";
            try {
                Object mode = Files.getAttribute(path, "unix:mode");
                int fmt = mode instanceof Integer m ? m & 0170000 : 0;
                what = switch (fmt) {
                    case 0010000 -> "a FIFO (named pipe)";
                    case 0020000 -> "a character device";
                    case 0060000 -> "a block device";
                    case 0140000 -> "a socket";
                    default -> what;
                };
            } catch (IOException | RuntimeException ignored) {
                // "a special file" is still true
            }
            throw bad(path, "is " + what + ", not a regular file; hpvm reads objects and executables from files");
        }
    }

    private static ByteBuffer readFully(FileChannel ch, int size) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(size);
        while (b.hasRemaining() && ch.read(b) >= 0) {
            // keep reading: a short read is not the end of the file
        }
        b.flip();
        return b;
    }

    private static String describe(IOException e) {
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }

    /** Parses an ELF file held in memory; {@code path} only names it in messages. */
    static ElfReader open(Path path, ByteBuffer contents, int... acceptedTypes) throws LoadException {
        ByteBuffer f = contents.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        f.position(0);
        long length = f.limit();
        if (length < 4 || f.get(0) != 0x7f || f.get(1) != 'E' || f.get(2) != 'L' || f.get(3) != 'F') {
            throw bad(path, "not an ELF file (it does not start with the bytes 7f 45 4c 46, \"\\x7fELF\")");
        }
        if (length < EHDR_SIZE) {
            throw bad(path, "the file is truncated: " + length + " bytes, shorter than the 64-byte ELF64 header");
        }
        int elfClass = f.get(4);
        if (elfClass != 2) {
            throw bad(path, "not an x86-64 ELF64 file (EI_CLASS " + elfClass + (elfClass == 1 ? ", ELFCLASS32: a "
                + "32-bit file" : ", invalid") + "); hpvm handles x86-64 ELF64 files only");
        }
        if (f.get(5) != 1) {
            throw bad(path, "not a little-endian ELF file (EI_DATA " + f.get(5) + "); x86-64 files are little-endian");
        }
        if (f.get(6) != 1) {
            throw bad(path, "unknown ELF version " + f.get(6) + " in e_ident (expected 1, EV_CURRENT)");
        }
        int type = Short.toUnsignedInt(f.getShort(16));
        int machine = Short.toUnsignedInt(f.getShort(18));
        if (machine != Elf.EM_X86_64) {
            throw bad(path, "not an x86-64 file (e_machine " + machine + machineName(machine) + ", expected 62, "
                + "EM_X86_64)");
        }
        boolean typeOk = false;
        for (int t : acceptedTypes) {
            typeOk |= type == t;
        }
        if (!typeOk) {
            throw bad(path, "wrong ELF type " + typeName(type) + " (expected " + typeNames(acceptedTypes) + ")");
        }
        ElfReader r = new ElfReader(path, f, type, f.getLong(24));
        r.readSections(f.getLong(40), Short.toUnsignedInt(f.getShort(58)), Short.toUnsignedInt(f.getShort(60)),
            Short.toUnsignedInt(f.getShort(62)));
        r.readSegments(f.getLong(32), Short.toUnsignedInt(f.getShort(54)), Short.toUnsignedInt(f.getShort(56)));
        return r;
    }

    private void readSections(long shoff, int entsize, int count, int shstrndx) throws LoadException {
        long length = file.limit();
        if (shoff == 0) {
            if (type == Elf.ET_REL) {
                throw bad(path, "has no section header table (e_shoff 0): a relocatable object needs one");
            }
            return;
        }
        if (entsize != SHDR_SIZE) {
            throw bad(path, "section headers are " + entsize + " bytes each (e_shentsize); ELF64 has 64");
        }
        if (!within(shoff, SHDR_SIZE, length)) {
            throw bad(path, "section header table at offset " + Elf.hex(shoff) + " lies past the end of the file ("
                + length + " bytes): the file is truncated");
        }
        // Extended numbering (gABI): with 0xff00 sections or more, the counts live in section 0's header.
        long n = count == 0 ? file.getLong((int) shoff + 32) : count;
        int strndx = shstrndx == SHN_XINDEX ? file.getInt((int) shoff + 40) : shstrndx;
        if (n > (length - shoff) / SHDR_SIZE) {
            throw bad(path, "section header table at offset " + Elf.hex(shoff) + " (" + n + " entries of 64 bytes) "
                + "lies past the end of the file (" + length + " bytes): the file is truncated");
        }
        int total = (int) n;
        if (strndx < 0 || strndx >= total) {
            throw bad(path, "the section name table index (e_shstrndx " + strndx + ") is past the section header "
                + "table (" + total + " sections)");
        }
        long[][] headers = new long[total][];
        for (int i = 0; i < total; i++) {
            int at = (int) (shoff + (long) i * SHDR_SIZE);
            headers[i] = new long[] {
                Integer.toUnsignedLong(file.getInt(at)), Integer.toUnsignedLong(file.getInt(at + 4)),
                file.getLong(at + 8), file.getLong(at + 16), file.getLong(at + 24), file.getLong(at + 32),
                Integer.toUnsignedLong(file.getInt(at + 40)), Integer.toUnsignedLong(file.getInt(at + 44)),
                file.getLong(at + 48), file.getLong(at + 56)};
        }
        long[] strtab = headers[strndx];
        if (strtab[1] != SHT_STRTAB) {
            throw bad(path, "the section name table (section " + strndx + ", e_shstrndx) is of type " + strtab[1]
                + ", not SHT_STRTAB");
        }
        byte[] names = contents(strndx, strtab, "the section name table");
        for (int i = 0; i < total; i++) {
            long[] h = headers[i];
            int shType = (int) h[1];
            String name = i == 0 ? "" : string(names, h[0], "name of section " + i, "the section name table");
            String label = "section " + i + " (" + (name.isEmpty() ? "unnamed" : name) + ")";
            long align = h[8];
            if (align != 0 && Long.bitCount(align) != 1) {
                throw bad(path, label + " has alignment " + align + " (sh_addralign), which is not a power of two");
            }
            long link = h[6];
            long info = h[7];
            if (link >= total && shType != 0) {
                throw bad(path, label + " links to section " + link + " (sh_link), past the section header table ("
                    + total + " sections)");
            }
            if (i == 0 || shType == 0 || shType == Elf.SHT_NOBITS) {
                sections.add(new Section(i, name, shType, h[2], h[3], h[4], h[5], align, (int) link, (int) info,
                    new byte[0]));
            } else {
                checkContents(h, label);
                sections.add(Section.lazy(i, name, shType, h[2], h[3], h[4], h[5], align, (int) link, (int) info,
                    file, (int) h[4], (int) h[5]));
            }
        }
    }

    /** The bytes of a section, after checking they lie inside the file. */
    private byte[] contents(int index, long[] h, String label) throws LoadException {
        checkContents(h, label);
        byte[] out = new byte[(int) h[5]];
        file.get((int) h[4], out);
        return out;
    }

    /** The section's contents lie inside the file. */
    private void checkContents(long[] h, String label) throws LoadException {
        long offset = h[4];
        long size = h[5];
        if (!within(offset, size, file.limit())) {
            throw bad(path, label + " at offset " + Elf.hex(offset) + ", " + Long.toUnsignedString(size) + " bytes, "
                + "lies past the end of the file (" + file.limit() + " bytes): the file is truncated or the section "
                + "header is corrupt");
        }
    }

    private void readSegments(long phoff, int entsize, int count) throws LoadException {
        if (count == 0) {
            return;
        }
        if (entsize != PHDR_SIZE) {
            throw bad(path, "program headers are " + entsize + " bytes each (e_phentsize); ELF64 has 56");
        }
        if (!within(phoff, (long) count * PHDR_SIZE, file.limit())) {
            throw bad(path, "program header table at offset " + Elf.hex(phoff) + " (" + count + " entries of 56 "
                + "bytes) lies past the end of the file (" + file.limit() + " bytes): the file is truncated");
        }
        for (int i = 0; i < count; i++) {
            int at = (int) (phoff + (long) i * PHDR_SIZE);
            segments.add(new Segment(file.getInt(at), file.getInt(at + 4), file.getLong(at + 8),
                file.getLong(at + 16), file.getLong(at + 32), file.getLong(at + 40), file.getLong(at + 48)));
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

    /**
     * The symbols of the first section of the given type (SHT_SYMTAB or SHT_DYNSYM), or an empty list. Names are
     * checked to lie in the table's string table; section indexes are checked to name a section or one of the
     * special indexes (UNDEF, ABS, COMMON).
     */
    List<Symbol> symbols(int sectionType) throws LoadException {
        List<Symbol> out = new ArrayList<>();
        Section table = null;
        for (Section s : sections) {
            if (s.type() == sectionType) {
                table = s;
                break;
            }
        }
        if (table == null) {
            return out;
        }
        String label = "symbol table " + table.name() + " (section " + table.index() + ")";
        if (table.data().length % SYM_SIZE != 0) {
            throw bad(path, label + " is " + table.data().length + " bytes, not a whole number of 24-byte symbols");
        }
        Section strings = sections.get(table.link());
        if (strings.type() != SHT_STRTAB) {
            throw bad(path, label + " takes its names from section " + strings.index() + " (sh_link), which is not "
                + "a string table");
        }
        byte[] names = strings.data();
        ByteBuffer b = le(table.data());
        String file = null;
        int count = table.data().length / SYM_SIZE;
        for (int i = 0; i < count; i++) {
            int at = i * SYM_SIZE;
            long nameOffset = Integer.toUnsignedLong(b.getInt(at));
            int infoByte = Byte.toUnsignedInt(b.get(at + 4));
            int shndx = Short.toUnsignedInt(b.getShort(at + 6));
            long value = b.getLong(at + 8);
            long size = b.getLong(at + 16);
            String name = string(names, nameOffset, "name of symbol " + i + " in " + label, strings.name());
            int version = name.indexOf('@');
            if (version > 0) {
                name = name.substring(0, version);
            }
            int symType = infoByte & 0xf;
            int bind = infoByte >>> 4;
            if (shndx >= sections.size() && shndx < SHN_LORESERVE && i > 0) {
                throw bad(path, "symbol " + i + " '" + name + "' is defined in section " + shndx + " (st_shndx), "
                    + "past the section header table (" + sections.size() + " sections)");
            }
            if (shndx == SHN_XINDEX) {
                throw bad(path, "symbol " + i + " '" + name + "' uses an extended section index (SHN_XINDEX): objects "
                    + "with more than 65279 sections are not supported");
            }
            if (symType == Elf.STT_FILE) {
                file = name;
            }
            out.add(new Symbol(i, name, value, size, symType, bind, shndx,
                bind == Elf.STB_LOCAL && symType != Elf.STT_FILE ? file : null));
        }
        return out;
    }

    /** The NUL-terminated string at {@code offset} of a string table. */
    private String string(byte[] table, long offset, String what, String tableName) throws LoadException {
        if (offset >= table.length) {
            if (offset == 0 && table.length == 0) {
                return "";
            }
            throw bad(path, what + " is at offset " + Elf.hex(offset) + " of " + tableName + ", which is only "
                + table.length + " bytes");
        }
        int end = (int) offset;
        while (end < table.length && table[end] != 0) {
            end++;
        }
        if (end == table.length) {
            throw bad(path, what + " at offset " + Elf.hex(offset) + " of " + tableName + " runs off the end of the "
                + "table (no terminating NUL)");
        }
        return new String(table, (int) offset, end - (int) offset, StandardCharsets.UTF_8);
    }

    /** True when {@code [offset, offset+size)} lies inside a file of {@code length} bytes (all unsigned). */
    static boolean within(long offset, long size, long length) {
        return Long.compareUnsigned(offset, length) <= 0 && Long.compareUnsigned(size, length - offset) <= 0;
    }

    static LoadException bad(Path path, String what) {
        return new LoadException(LoadException.Kind.BAD_FILE, path + ": " + what);
    }

    static ByteBuffer le(byte[] data) {
        return ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static String machineName(int machine) {
        return switch (machine) {
            case 3 -> ", EM_386: 32-bit x86";
            case 40 -> ", EM_ARM";
            case 183 -> ", EM_AARCH64";
            case 243 -> ", EM_RISCV";
            default -> "";
        };
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
            case 4 -> "ET_CORE (core dump)";
            default -> "e_type " + type;
        };
    }
}
