package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** An unlinked ELF relocatable object ({@code gcc -c}): sections, symbols and the relocations of each section. */
public final class RelocatableObject {

    private final Path path;
    private final ByteBuffer contents;
    private final List<Section> sections;
    private final List<Symbol> symbols;
    private final Map<Integer, List<Relocation>> relocations = new HashMap<>();
    private java.util.Set<Integer> comdat;
    // Indexes made on first use: comparisons and links query them once per relocation or function.
    private Map<String, Symbol> byName;
    private final Map<Integer, Relocation[]> sortedRelocations = new HashMap<>();
    private final Map<Integer, java.util.BitSet> relocatedBytes = new HashMap<>();
    private final Map<Integer, java.util.TreeSet<Long>> symbolValues = new HashMap<>();

    private RelocatableObject(ElfReader r) throws LoadException {
        this.path = r.path;
        this.contents = r.contents();
        this.sections = Collections.unmodifiableList(r.sections);
        int symtab = -1;
        for (Section s : sections) {
            if (s.type() == Elf.SHT_SYMTAB) {
                if (symtab >= 0) {
                    throw ElfReader.bad(path, "has two symbol tables (sections " + symtab + " and " + s.index()
                        + "); a relocatable object has one");
                }
                symtab = s.index();
            }
        }
        if (symtab < 0) {
            throw ElfReader.bad(path, "has no symbol table (.symtab); was it stripped? hpvm links patches by their "
                + "symbols: use the object as the compiler wrote it");
        }
        this.symbols = Collections.unmodifiableList(r.symbols(Elf.SHT_SYMTAB));
        for (Symbol sym : symbols) {
            checkSymbol(sym);
        }
        for (Section s : sections) {
            if (s.type() == Elf.SHT_REL) {
                throw ElfReader.bad(path, "section " + s.name() + " is SHT_REL; x86-64 objects use SHT_RELA");
            }
            if (s.type() == Elf.SHT_GROUP) {
                checkGroup(s);
            }
            if (s.type() == Elf.SHT_RELA) {
                relocations.put(s.info(), readRelocations(s, symtab));
            }
        }
    }

    /**
     * A defined symbol must lie wholly inside its section: {@code [value, value+size)} within the section's size.
     * The linker places code by these numbers and the swap enters the function at its value, so a dishonest one
     * would make a worker run bytes that are not the function.
     */
    private void checkSymbol(Symbol sym) throws LoadException {
        if (sym.index() == 0) {
            return;
        }
        String label = "symbol " + sym.index() + (sym.name().isEmpty() ? " (unnamed)" : " '" + sym.name() + "'");
        if (sym.type() > Elf.STT_TLS && sym.type() != Elf.STT_GNU_IFUNC) {
            throw ElfReader.bad(path, label + " has unknown type " + sym.type() + " (st_info)");
        }
        if (sym.bind() > Elf.STB_WEAK && sym.bind() != Elf.STB_GNU_UNIQUE) {
            throw ElfReader.bad(path, label + " has unknown binding " + sym.bind() + " (st_info)");
        }
        int shndx = sym.sectionIndex();
        if (sym.type() == Elf.STT_SECTION && (shndx == Elf.SHN_UNDEF || shndx >= ElfReader.SHN_LORESERVE)) {
            throw ElfReader.bad(path, label + " is a section symbol (STT_SECTION) with section index "
                + Elf.hex(shndx) + ", which names no section");
        }
        if (shndx == Elf.SHN_UNDEF || shndx >= ElfReader.SHN_LORESERVE) {
            if (shndx >= ElfReader.SHN_LORESERVE && shndx != Elf.SHN_ABS && shndx != Elf.SHN_COMMON) {
                throw ElfReader.bad(path, label + " has reserved section index " + Elf.hex(shndx) + " (st_shndx)");
            }
            if (shndx == Elf.SHN_COMMON && (sym.value() <= 0 || Long.bitCount(sym.value()) != 1
                || sym.size() < 0 || sym.size() > Integer.MAX_VALUE)) {
                throw ElfReader.bad(path, label + " is a common symbol with alignment " + sym.value() + " and size "
                    + sym.size() + ", which no compiler emits");
            }
            return;
        }
        Section sec = sections.get(shndx);
        if (sec.type() == Elf.SHT_NULL) {
            throw ElfReader.bad(path, label + " is defined in section " + shndx + ", which is unused (SHT_NULL)");
        }
        long value = sym.value();
        long size = sym.size();
        if (Long.compareUnsigned(value, sec.size()) > 0 || Long.compareUnsigned(size, sec.size() - value) > 0) {
            throw ElfReader.bad(path, label + " (" + typeName(sym.type()) + ") at " + sec.name() + "+"
                + Elf.hex(value) + ", " + Long.toUnsignedString(size) + " bytes (st_value, st_size), lies outside "
                + "its section, which is " + Elf.hex(sec.size()) + " bytes");
        }
    }

    private void checkGroup(Section g) throws LoadException {
        if (g.data().length < 4 || g.data().length % 4 != 0) {
            throw ElfReader.bad(path, "group section " + g.name() + " (section " + g.index() + ") is "
                + g.data().length + " bytes, not a flag word followed by section indexes");
        }
        if (Integer.toUnsignedLong(g.info()) >= symbols.size()) {
            throw ElfReader.bad(path, "group section " + g.name() + " names signature symbol " + Integer
                .toUnsignedString(g.info()) + " (sh_info), past the symbol table (" + symbols.size() + " symbols)");
        }
        ByteBuffer b = ElfReader.le(g.data());
        b.getInt();
        while (b.hasRemaining()) {
            long member = Integer.toUnsignedLong(b.getInt());
            if (member == 0 || member >= sections.size()) {
                throw ElfReader.bad(path, "group section " + g.name() + " lists section " + member + ", which does "
                    + "not exist (" + sections.size() + " sections)");
            }
        }
    }

    /**
     * The entries of a relocation section, each checked: it must use the object's symbol table, apply to a section
     * with contents, name an existing symbol and patch bytes that lie inside the section it applies to.
     */
    private List<Relocation> readRelocations(Section s, int symtab) throws LoadException {
        String label = "relocation section " + s.name() + " (section " + s.index() + ")";
        if (s.data().length % ElfReader.RELA_SIZE != 0) {
            throw ElfReader.bad(path, label + " is " + s.data().length + " bytes, not a whole number of 24-byte "
                + "entries");
        }
        if (s.link() != symtab) {
            throw ElfReader.bad(path, label + " uses section " + s.link() + " as its symbol table (sh_link), not "
                + "the object's symbol table (section " + symtab + ")");
        }
        if (s.info() <= 0 || s.info() >= sections.size()) {
            throw ElfReader.bad(path, label + " applies to section " + Integer.toUnsignedString(s.info())
                + " (sh_info), which does not exist (" + sections.size() + " sections)");
        }
        Section target = sections.get(s.info());
        if (target.type() == Elf.SHT_NULL || target.type() == Elf.SHT_NOBITS) {
            throw ElfReader.bad(path, label + " applies to " + target.name() + " (section " + target.index()
                + "), which has no contents to relocate");
        }
        if (relocations.containsKey(s.info())) {
            throw ElfReader.bad(path, label + " applies to " + target.name() + ", which another relocation section "
                + "already relocates");
        }
        ByteBuffer b = ElfReader.le(s.data());
        List<Relocation> list = new ArrayList<>(s.data().length / ElfReader.RELA_SIZE);
        while (b.remaining() >= ElfReader.RELA_SIZE) {
            long offset = b.getLong();
            long info = b.getLong();
            long addend = b.getLong();
            long symbol = info >>> 32;
            int type = (int) info;
            String where = target.name() + "+" + Elf.hex(offset) + " (" + Elf.relocationName(type) + ")";
            if (symbol >= symbols.size()) {
                throw ElfReader.bad(path, "relocation at " + where + " names symbol " + symbol + ", past the symbol "
                    + "table (" + symbols.size() + " symbols)");
            }
            if (symbol == 0 && type != Elf.R_X86_64_NONE) {
                throw ElfReader.bad(path, "relocation at " + where + " names no symbol (index 0)");
            }
            int width = Elf.relocationWidth(type);
            if (Long.compareUnsigned(offset, target.size()) >= 0 && width != 0
                || Long.compareUnsigned(Math.max(width, 0), target.size() - offset) > 0) {
                throw ElfReader.bad(path, "relocation at " + where + " patches " + Math.max(width, 1) + " bytes "
                    + "outside " + target.name() + ", which is " + Elf.hex(target.size()) + " bytes");
            }
            list.add(new Relocation(offset, type, (int) symbol, addend));
        }
        return list;
    }

    static String typeName(int type) {
        return switch (type) {
            case Elf.STT_NOTYPE -> "STT_NOTYPE";
            case Elf.STT_OBJECT -> "STT_OBJECT";
            case Elf.STT_FUNC -> "STT_FUNC";
            case Elf.STT_SECTION -> "STT_SECTION";
            case Elf.STT_FILE -> "STT_FILE";
            case Elf.STT_COMMON -> "STT_COMMON";
            case Elf.STT_TLS -> "STT_TLS";
            case Elf.STT_GNU_IFUNC -> "STT_GNU_IFUNC";
            default -> "type " + type;
        };
    }

    /**
     * The object's bytes, exactly those parsed: what a digest of the object or a copy of it for a debugger must be
     * made of (the file may have been rewritten since).
     */
    public byte[] contents() {
        byte[] out = new byte[contents.limit()];
        contents.duplicate().position(0).get(out);
        return out;
    }

    /** Reads a relocatable object; anything else (executable, shared object, garbage) is a BAD_FILE error. */
    public static RelocatableObject read(Path path) throws LoadException {
        return new RelocatableObject(ElfReader.open(path, Elf.ET_REL));
    }

    /** Parses an object held in memory (for example a resource); {@code name} names it in messages. */
    public static RelocatableObject read(String name, byte[] contents) throws LoadException {
        return new RelocatableObject(ElfReader.open(Path.of(name), ByteBuffer.wrap(contents), Elf.ET_REL));
    }

    public Path path() {
        return path;
    }

    public List<Section> sections() {
        return sections;
    }

    public Section section(int index) {
        return sections.get(index);
    }

    public List<Symbol> symbols() {
        return symbols;
    }

    /**
     * True when section {@code index} belongs to a COMDAT group ({@code SHT_GROUP} with {@code GRP_COMDAT}): code
     * and data every object that uses them defines again (C++ inline functions, template instances, their
     * function-local statics, vtables, type_info), of which a linker keeps one copy.
     */
    public boolean inComdatGroup(int index) {
        if (comdat == null) {
            java.util.Set<Integer> members = new java.util.HashSet<>();
            for (Section g : sections) {
                if (g.type() != Elf.SHT_GROUP || g.data().length < 4) {
                    continue;
                }
                ByteBuffer b = ElfReader.le(g.data());
                if ((b.getInt() & 1) == 0) {
                    continue;
                }
                while (b.remaining() >= 4) {
                    members.add(b.getInt());
                }
            }
            comdat = members;
        }
        return comdat.contains(index);
    }

    /** Relocations that apply to the given section (empty when it has none). */
    public List<Relocation> relocations(int sectionIndex) {
        return relocations.getOrDefault(sectionIndex, List.of());
    }

    /** The defined, non-local-section symbol of that name, preferring a global one; null when absent. */
    public Symbol definedSymbol(String name) {
        if (byName == null) {
            Map<String, Symbol> index = new HashMap<>();
            for (Symbol s : symbols) {
                if (s.isDefined() && s.type() != Elf.STT_SECTION && s.type() != Elf.STT_FILE) {
                    Symbol had = index.get(s.name());
                    if (had == null || had.isLocal() && !s.isLocal()) {
                        index.put(s.name(), s); // the first local one, unless a global one comes
                    }
                }
            }
            byName = index;
        }
        return byName.get(name);
    }

    /**
     * The relocations of a section whose offsets lie in {@code [from, to)}, in offset order: what a per-function
     * comparison needs without going through the whole section's list for each function.
     */
    public List<Relocation> relocations(int sectionIndex, long from, long to) {
        Relocation[] sorted = sortedRelocations.computeIfAbsent(sectionIndex, k -> {
            Relocation[] a = relocations(k).toArray(new Relocation[0]);
            java.util.Arrays.sort(a, java.util.Comparator.comparingLong(Relocation::offset));
            return a;
        });
        int lo = lowerBound(sorted, from);
        int hi = lowerBound(sorted, to);
        return lo >= hi ? List.of() : java.util.Arrays.asList(sorted).subList(lo, hi);
    }

    private static int lowerBound(Relocation[] sorted, long offset) {
        int a = 0;
        int b = sorted.length;
        while (a < b) {
            int m = (a + b) >>> 1;
            if (sorted[m].offset() < offset) {
                a = m + 1;
            } else {
                b = m;
            }
        }
        return a;
    }

    /** The bytes of a section that some relocation patches (their contents are not the final ones). */
    public java.util.BitSet relocatedBytes(int sectionIndex) {
        return relocatedBytes.computeIfAbsent(sectionIndex, k -> {
            java.util.BitSet bits = new java.util.BitSet();
            for (Relocation r : relocations(k)) {
                int width = Math.max(1, Elf.relocationWidth(r.type()));
                bits.set((int) Math.min(r.offset(), Integer.MAX_VALUE - 16), (int) Math.min(r.offset() + width,
                    Integer.MAX_VALUE - 8));
            }
            return bits;
        });
    }

    /** The smallest value of a named, non-section symbol of the section above {@code offset}, or -1. */
    public long nextSymbolAfter(int sectionIndex, long offset) {
        java.util.TreeSet<Long> values = symbolValues.computeIfAbsent(sectionIndex, k -> {
            java.util.TreeSet<Long> v = new java.util.TreeSet<>();
            for (Symbol s : symbols) {
                if (s.sectionIndex() == k && s.type() != Elf.STT_SECTION) {
                    v.add(s.value());
                }
            }
            return v;
        });
        Long next = values.higher(offset);
        return next == null ? -1 : next;
    }
}
