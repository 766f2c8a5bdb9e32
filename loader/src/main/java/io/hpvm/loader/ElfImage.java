package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * A linked ELF file as the dynamic loader maps it: an executable (ET_EXEC or PIE) or a shared object. Addresses in
 * it are link-time virtual addresses; add the load bias of the running process to get run-time addresses.
 */
public final class ElfImage {

    private final Path path;
    private final int type;
    private final long entry;
    private final boolean hasInterpreter;
    private final List<Section> sections;
    private final List<Segment> segments;
    private final List<Symbol> symbols;
    private final boolean fromSymtab;
    private final List<Symbol> dynamicSymbols;
    private final int[] versionIndex;
    private final String buildId;
    /** The separate debug file {@link #symbols} came from, or null: this file's own. */
    private final Path symbolFile;

    private ElfImage(ElfReader r) throws LoadException {
        this.path = r.path;
        this.type = r.type;
        this.entry = r.entry;
        this.sections = Collections.unmodifiableList(r.sections);
        this.segments = Collections.unmodifiableList(r.segments);
        this.hasInterpreter = segments.stream().anyMatch(s -> s.type() == Elf.PT_INTERP);
        List<Symbol> symtab = r.symbols(Elf.SHT_SYMTAB);
        this.dynamicSymbols = Collections.unmodifiableList(r.symbols(Elf.SHT_DYNSYM));
        this.fromSymtab = !symtab.isEmpty();
        this.symbols = fromSymtab ? Collections.unmodifiableList(symtab) : dynamicSymbols;
        Section versym = r.section(".gnu.version");
        if (versym != null) {
            ByteBuffer b = ElfReader.le(versym.data());
            versionIndex = new int[versym.data().length / 2];
            for (int i = 0; i < versionIndex.length; i++) {
                versionIndex[i] = Short.toUnsignedInt(b.getShort());
            }
        } else {
            versionIndex = new int[0];
        }
        this.buildId = readBuildId(r.section(".note.gnu.build-id"));
        this.symbolFile = null;
    }

    private ElfImage(ElfImage base, List<Symbol> symbols, Path symbolFile) {
        this.path = base.path;
        this.type = base.type;
        this.entry = base.entry;
        this.sections = base.sections;
        this.segments = base.segments;
        this.hasInterpreter = base.hasInterpreter;
        this.dynamicSymbols = base.dynamicSymbols;
        this.versionIndex = base.versionIndex;
        this.buildId = base.buildId;
        this.symbols = Collections.unmodifiableList(symbols);
        this.fromSymtab = true;
        this.symbolFile = symbolFile;
    }

    /**
     * This image with the {@code .symtab} of {@code debug}, its separate debug file (as {@code objcopy
     * --only-keep-debug} makes them: the same section headers, the code NOBITS, every symbol): a stripped program's
     * static functions and file statics. Section indexes are renumbered to this file's sections of the same name
     * (strip removes sections, so they differ); a symbol in a section this file lacks keeps its index out of range.
     */
    public ElfImage withSymbolsOf(ElfImage debug) {
        List<Symbol> out = new ArrayList<>();
        for (Symbol s : debug.symbols) {
            int index = s.sectionIndex();
            if (index > 0 && index < debug.sections.size()) {
                Section named = section(debug.sections.get(index).name());
                index = named != null ? named.index() : Integer.MAX_VALUE;
            }
            out.add(new Symbol(s.index(), s.name(), s.value(), s.size(), s.type(), s.bind(),
                index == Integer.MAX_VALUE ? 0xfff0 : index, s.file()));
        }
        return new ElfImage(this, out, debug.path);
    }

    /** The separate debug file the symbols came from ({@link #withSymbolsOf}), or null. */
    public Path symbolFile() {
        return symbolFile;
    }

    /**
     * The {@code .gnu_debuglink} of this file: the debug file's name, and the CRC-32 of its contents (as a long);
     * null when it has none.
     */
    public Map.Entry<String, Long> debugLink() {
        Section link = section(".gnu_debuglink");
        if (link == null || link.data().length < 8) {
            return null;
        }
        byte[] d = link.data();
        int end = 0;
        while (end < d.length && d[end] != 0) {
            end++;
        }
        int crcAt = (end + 4) & ~3;
        if (end == 0 || crcAt + 4 > d.length) {
            return null;
        }
        return Map.entry(new String(d, 0, end, java.nio.charset.StandardCharsets.UTF_8),
            Integer.toUnsignedLong(ElfReader.le(d).getInt(crcAt)));
    }

    /** Reads an executable or shared object. */
    public static ElfImage read(Path path) throws LoadException {
        return new ElfImage(ElfReader.open(path, Elf.ET_EXEC, Elf.ET_DYN));
    }

    private static String readBuildId(Section note) {
        if (note == null || note.data().length < 16) {
            return "";
        }
        ByteBuffer b = ElfReader.le(note.data());
        long nameSize = Integer.toUnsignedLong(b.getInt());
        long descSize = Integer.toUnsignedLong(b.getInt());
        long descStart = 12 + ((nameSize + 3) & ~3L);
        StringBuilder s = new StringBuilder();
        for (long i = descStart; i < descStart + descSize && i < note.data().length; i++) {
            s.append(String.format("%02x", note.data()[(int) i]));
        }
        return s.toString();
    }

    public Path path() {
        return path;
    }

    /** ET_EXEC or ET_DYN. */
    public int type() {
        return type;
    }

    /** True when the image is position independent (loaded at a bias chosen at run time). */
    public boolean isPositionIndependent() {
        return type == Elf.ET_DYN;
    }

    /** True for executables that have a PT_INTERP (dynamically linked). */
    public boolean hasInterpreter() {
        return hasInterpreter;
    }

    public long entry() {
        return entry;
    }

    public List<Section> sections() {
        return sections;
    }

    public Section section(String name) {
        for (Section s : sections) {
            if (s.name().equals(name)) {
                return s;
            }
        }
        return null;
    }

    public List<Segment> segments() {
        return segments;
    }

    /** PT_LOAD segments with execute permission. */
    public List<Segment> executableSegments() {
        List<Segment> out = new ArrayList<>();
        for (Segment s : segments) {
            if (s.type() == Elf.PT_LOAD && s.isExecutable()) {
                out.add(s);
            }
        }
        return out;
    }

    /** Lowest PT_LOAD virtual address, page-aligned down: what the load bias is relative to. */
    public long lowestLoadAddress() {
        long low = Long.MAX_VALUE;
        for (Segment s : segments) {
            if (s.type() == Elf.PT_LOAD) {
                low = Math.min(low, s.vaddr() & ~0xfffL);
            }
        }
        return low == Long.MAX_VALUE ? 0 : low;
    }

    /** The PT_TLS segment (the executable's static thread-local block), or null. */
    public Segment tlsSegment() {
        for (Segment s : segments) {
            if (s.type() == Elf.PT_TLS) {
                return s;
            }
        }
        return null;
    }

    /** Virtual address of the program headers (PT_PHDR), or -1 when the file has none. */
    public long programHeaderAddress() {
        for (Segment s : segments) {
            if (s.type() == Elf.PT_PHDR) {
                return s.vaddr();
            }
        }
        return -1;
    }

    /** {@code .symtab} when the file has one, else {@code .dynsym}. */
    public List<Symbol> symbols() {
        return symbols;
    }

    /** True when {@link #symbols()} came from {@code .symtab}. */
    public boolean hasSymtab() {
        return fromSymtab;
    }

    public List<Symbol> dynamicSymbols() {
        return dynamicSymbols;
    }

    /**
     * Symbols this file exports to others through {@code .dynsym}: defined, global or weak, and not a hidden
     * (non-default) version, so {@code memcpy} resolves to the default {@code memcpy@@GLIBC_2.14}.
     */
    public List<Symbol> exportedSymbols() {
        List<Symbol> out = new ArrayList<>();
        for (Symbol s : dynamicSymbols) {
            if (!s.isDefined() || s.isLocal() || s.name().isEmpty()) {
                continue;
            }
            if (s.index() < versionIndex.length && (versionIndex[s.index()] & 0x8000) != 0) {
                continue;
            }
            out.add(s);
        }
        return out;
    }

    /**
     * One dynamic relocation ({@code .rela.dyn}, {@code .rela.plt}): what the dynamic linker writes at
     * {@code offset} (a link-time address) when the file is loaded.
     *
     * @param symbol the {@code .dynsym} name it refers to, or "" (RELATIVE and friends)
     */
    public record DynamicRelocation(long offset, int type, String symbol, long addend) {
    }

    /** Every dynamic relocation of the file, in file order. */
    public List<DynamicRelocation> dynamicRelocations() {
        List<DynamicRelocation> out = new ArrayList<>();
        for (Section rela : sections) {
            if (rela.type() != Elf.SHT_RELA || !rela.isAlloc()) {
                continue;
            }
            ByteBuffer b = ElfReader.le(rela.data());
            while (b.remaining() >= 24) {
                long at = b.getLong();
                long info = b.getLong();
                long addend = b.getLong();
                int sym = (int) (info >>> 32);
                out.add(new DynamicRelocation(at, (int) info, sym > 0 && sym < dynamicSymbols.size()
                    ? dynamicSymbols.get(sym).name() : "", addend));
            }
        }
        return out;
    }

    /** The GNU build-id as hex, or "" when the file has none. */
    public String buildId() {
        return buildId;
    }
}
