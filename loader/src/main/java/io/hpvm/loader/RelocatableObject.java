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
    private final List<Section> sections;
    private final List<Symbol> symbols;
    private final Map<Integer, List<Relocation>> relocations = new HashMap<>();
    private java.util.Set<Integer> comdat;

    private RelocatableObject(ElfReader r) throws LoadException {
        this.path = r.path;
        this.sections = Collections.unmodifiableList(r.sections);
        this.symbols = Collections.unmodifiableList(r.symbols(Elf.SHT_SYMTAB));
        for (Section s : sections) {
            if (s.type() == Elf.SHT_REL) {
                throw new LoadException(LoadException.Kind.BAD_FILE,
                    path + ": section " + s.name() + " is SHT_REL; x86-64 objects use SHT_RELA");
            }
            if (s.type() != Elf.SHT_RELA) {
                continue;
            }
            if (s.info() <= 0 || s.info() >= sections.size()) {
                throw new LoadException(LoadException.Kind.BAD_FILE,
                    path + ": relocation section " + s.name() + " applies to missing section " + s.info());
            }
            ByteBuffer b = ElfReader.le(s.data());
            List<Relocation> list = relocations.computeIfAbsent(s.info(), k -> new ArrayList<>());
            while (b.remaining() >= 24) {
                long offset = b.getLong();
                long info = b.getLong();
                long addend = b.getLong();
                int symbol = (int) (info >>> 32);
                if (symbol >= symbols.size()) {
                    throw new LoadException(LoadException.Kind.BAD_FILE, path + ": relocation at " + s.name()
                        + "+" + Elf.hex(offset) + " names symbol " + symbol + ", past the symbol table");
                }
                list.add(new Relocation(offset, (int) info, symbol, addend));
            }
        }
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
        Symbol found = null;
        for (Symbol s : symbols) {
            if (s.name().equals(name) && s.isDefined() && s.type() != Elf.STT_SECTION && s.type() != Elf.STT_FILE) {
                if (!s.isLocal()) {
                    return s;
                }
                found = found == null ? s : found;
            }
        }
        return found;
    }
}
