package io.hpvm.loader;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Which functions of a relocatable object differ from the functions of the same name in a linked executable: the
 * question behind {@code hpvm swap --all-changed NEW.o}, where the object the program was built from is not at hand.
 *
 * <p>The comparison is conservative, because its two possible mistakes are not equal: calling a changed function
 * unchanged would silently leave the old code running, while calling an unchanged one changed only swaps in the
 * same code again. A function counts as unchanged only when it has the same size, the same bytes outside relocation
 * fields, and every relocation is proven to reach the same thing in the executable: the same named symbol (directly,
 * through a PLT entry or a GOT slot), the same variable, the same read-only bytes (string literals, tables), or the
 * same compiler-made part ({@code fn.cold}, compared in turn). Anything hpvm cannot prove (TLS, relaxed calls through
 * the GOT, unknown relocation kinds) counts as changed.
 */
public final class ImageDiff {

    private static final int R_GLOB_DAT = 6;
    private static final int R_JUMP_SLOT = 7;
    private static final int R_RELATIVE = 8;

    /**
     * One function of the object that the executable also has.
     *
     * @param name    its name
     * @param address its link-time address in the executable
     * @param difference why it is not proven the same (the first reason found), or null when it is the same code
     */
    public record Match(String name, long address, String difference) {
        public boolean same() {
            return difference == null;
        }
    }

    /**
     * The result.
     *
     * @param matches functions the object and the executable both have, with the verdict
     * @param absent  functions only the object has (new, or inlined everywhere in the executable)
     */
    public record Result(List<Match> matches, List<String> absent) {
        public List<Match> changed() {
            return matches.stream().filter(m -> !m.same()).toList();
        }
    }

    private final RelocatableObject obj;
    private final ElfImage image;
    private final Map<String, List<Symbol>> imageByName = new HashMap<>();
    private final Map<Long, String> gotSlotNames = new HashMap<>();
    private final Map<Long, Long> gotSlotValues = new HashMap<>();
    private final SectionSymbols sectionSymbols;
    /** The first reason a comparison failed. */
    private String why;

    private ImageDiff(RelocatableObject obj, ElfImage image) {
        this.obj = obj;
        this.image = image;
        this.sectionSymbols = new SectionSymbols(obj);
        for (Symbol s : image.symbols()) {
            if (s.isDefined() && !s.name().isEmpty() && s.type() != Elf.STT_SECTION && s.type() != Elf.STT_FILE) {
                imageByName.computeIfAbsent(s.name(), k -> new ArrayList<>()).add(s);
            }
        }
        for (ElfImage.DynamicRelocation d : image.dynamicRelocations()) {
            if ((d.type() == R_GLOB_DAT || d.type() == R_JUMP_SLOT || d.type() == Elf.R_X86_64_64)
                && !d.symbol().isEmpty()) {
                gotSlotNames.put(d.offset(), d.symbol());
            } else if (d.type() == R_RELATIVE) {
                gotSlotValues.put(d.offset(), d.addend());
            }
        }
    }

    public static Result compare(RelocatableObject obj, ElfImage image) {
        return compare(obj, image, name -> true);
    }

    /** Compares only the functions whose names {@code which} accepts. */
    public static Result compare(RelocatableObject obj, ElfImage image, java.util.function.Predicate<String> which) {
        ImageDiff d = new ImageDiff(obj, image);
        List<Match> matches = new ArrayList<>();
        List<String> absent = new ArrayList<>();
        for (Symbol f : obj.symbols()) {
            if (!f.isFunction() || !f.isDefined() || f.name().isEmpty() || f.sectionIndex() >= obj.sections().size()
                || !which.test(f.name()) || f.name().contains(".cold")) {
                continue; // a .cold fragment is compared as part of the function that jumps to it
            }
            Symbol g = d.counterpart(f);
            if (g == null) {
                absent.add(f.name());
            } else {
                d.why = null;
                boolean same = d.sameCode(f, g, new HashSet<>());
                matches.add(new Match(f.name(), g.value(), same ? null : d.why == null ? "differs" : d.why));
            }
        }
        return new Result(matches, absent);
    }

    /** The executable's symbol for object symbol {@code s}: same name, and same source file when it is local. */
    private Symbol counterpart(Symbol s) {
        List<Symbol> all = imageByName.getOrDefault(s.name(), List.of());
        if (!s.isLocal()) {
            Symbol onlyLocal = null;
            int locals = 0;
            for (Symbol g : all) {
                if (!g.isLocal()) {
                    return g;
                }
                onlyLocal = g;
                locals++;
            }
            return locals == 1 ? onlyLocal : null; // a hidden symbol (visibility) ends up local in the executable
        }
        Symbol only = null;
        int locals = 0;
        for (Symbol g : all) {
            if (g.isLocal()) {
                locals++;
                only = g;
                if (s.file() != null && g.file() != null && baseName(s.file()).equals(baseName(g.file()))) {
                    return g;
                }
            }
        }
        return locals == 1 ? only : null;
    }

    private static String baseName(String file) {
        return file.substring(file.lastIndexOf('/') + 1);
    }

    private boolean sameCode(Symbol f, Symbol g, Set<String> visiting) {
        if (!visiting.add(f.name())) {
            return true;
        }
        Section s = obj.section(f.sectionIndex());
        if (f.size() != g.size() || f.size() <= 0 || f.value() + f.size() > s.data().length) {
            return fail(f.name() + ": size " + f.size() + " here, " + g.size() + " in the executable");
        }
        byte[] mine = slice(s.data(), f.value(), (int) f.size());
        byte[] theirs = read(g.value(), (int) f.size());
        if (theirs == null) {
            return fail(f.name() + ": no code in the executable file at " + Elf.hex(g.value()));
        }
        boolean[] masked = new boolean[mine.length];
        for (Relocation r : obj.relocations(s.index(), f.value(), f.value() + f.size())) {
            long at = r.offset() - f.value();
            EdgeKind kind = EdgeKind.of(r.type());
            if (kind == null || at + kind.width() > f.size()) {
                return fail(f.name() + "+" + Elf.hex(at) + ": " + Elf.relocationName(r.type()) + " not compared");
            }
            for (int k = 0; k < kind.width(); k++) {
                masked[(int) at + k] = true;
            }
            long fixup = g.value() + at;
            long field = kind.width() == 8 ? ElfReader.le(theirs).getLong((int) at)
                : kind == EdgeKind.POINTER32 ? Integer.toUnsignedLong(ElfReader.le(theirs).getInt((int) at))
                : ElfReader.le(theirs).getInt((int) at);
            if (kind == EdgeKind.GOT_PCREL32 && at >= 2 && mine[(int) at - 2] == (byte) 0x8b
                && theirs[(int) at - 2] == (byte) 0x8d) {
                masked[(int) at - 2] = true; // the linker relaxed "mov foo@GOTPCREL(%rip)" to "lea foo(%rip)"
                kind = EdgeKind.PCREL32;
            }
            if (!sameTarget(r, kind, field, fixup, visiting)) {
                Symbol t = obj.symbols().get(r.symbolIndex());
                return fail(f.name() + "+" + Elf.hex(at) + ": " + Elf.relocationName(r.type()) + " to "
                    + (t.type() == Elf.STT_SECTION ? obj.section(t.sectionIndex()).name() : t.name()) + "+"
                    + r.addend() + " does not reach the same thing");
            }
        }
        for (int i = 0; i < mine.length; i++) {
            if (!masked[i] && mine[i] != theirs[i] && !sameLocalBranch(f, g, mine, theirs, masked, i, visiting)) {
                return fail(f.name() + "+" + Elf.hex(i) + ": code differs");
            }
        }
        return true;
    }

    /**
     * A call or jump to a function in the same section needs no relocation: the assembler fills in the distance,
     * which changes when a neighbour changes size. True (and the field masked) when the bytes that differ at
     * {@code i} are the rel32 of a {@code call}/{@code jmp} (e8/e9) whose targets are the same-named function.
     */
    private boolean sameLocalBranch(Symbol f, Symbol g, byte[] mine, byte[] theirs, boolean[] masked, int i,
                                    Set<String> visiting) {
        for (int p = Math.max(0, i - 4); p < i; p++) {
            if (p + 5 > mine.length || mine[p] != theirs[p] || mine[p] != (byte) 0xe8 && mine[p] != (byte) 0xe9) {
                continue;
            }
            long objTarget = f.value() + p + 5 + ElfReader.le(mine).getInt(p + 1);
            long imageTarget = g.value() + p + 5 + ElfReader.le(theirs).getInt(p + 1);
            Symbol inner = covering(f.sectionIndex(), objTarget);
            Symbol counterpart = inner == null || !inner.isFunction() ? null : counterpart(inner);
            if (counterpart != null && counterpart.value() + (objTarget - inner.value()) == imageTarget
                && (inner.name().indexOf('.') < 0 || sameCode(inner, counterpart, visiting))) {
                for (int k = p + 1; k < p + 5; k++) {
                    masked[k] = true;
                }
                return true;
            }
        }
        return false;
    }

    private boolean fail(String reason) {
        if (why == null) {
            why = reason;
        }
        return false;
    }

    /** True when the executable's field value at {@code fixup} reaches what relocation {@code r} names. */
    private boolean sameTarget(Relocation r, EdgeKind kind, long field, long fixup, Set<String> visiting) {
        Symbol t = obj.symbols().get(r.symbolIndex());
        long target;
        switch (kind) {
            case PCREL32, BRANCH_PCREL32, PCREL64 -> target = field + fixup - r.addend();
            case POINTER64, POINTER32, POINTER32_SIGNED -> target = field - r.addend();
            case GOT_PCREL32 -> {
                long slot = field + fixup - r.addend();
                String name = gotSlotNames.get(slot);
                if (name != null) {
                    return t.type() != Elf.STT_SECTION && name.equals(t.name());
                }
                Long value = gotSlotValues.get(slot);
                byte[] raw = value == null ? read(slot, 8) : null;
                if (value == null && raw == null) {
                    return false;
                }
                target = value != null ? value : ElfReader.le(raw).getLong();
                return t.type() != Elf.STT_SECTION && isSymbol(t, target);
            }
            default -> {
                return false; // TLS, GOT-relative and size fixups: not proven here, so counted as changed
            }
        }
        boolean localConstant = t.type() != Elf.STT_SECTION && t.isLocal() && t.isDefined()
            && t.sectionIndex() > 0 && t.sectionIndex() < obj.sections().size()
            && !obj.section(t.sectionIndex()).isExecutable() && !obj.section(t.sectionIndex()).isWritableData();
        if (t.type() != Elf.STT_SECTION && !localConstant) {
            return isSymbol(t, target) || plt(target).equals(t.name());
        }
        if (t.sectionIndex() <= 0 || t.sectionIndex() >= obj.sections().size()) {
            return false;
        }
        Section sec = obj.section(t.sectionIndex());
        long pcBias = kind.isPcRelative() ? 4 : 0;
        // A label in read-only data (.LC0 in a string section) is that section plus the label's offset.
        long base = localConstant ? t.value() : 0;
        long offset = base + r.addend() + pcBias;
        long referenced = target + r.addend() + pcBias;
        if (sec.isTls()) {
            return false;
        }
        if (sec.isExecutable() || sec.isWritableData()) {
            // The field points some bytes before the end of its instruction (an immediate may follow), so the
            // variable is the one covering A+4 .. A+8, else the one covering A.
            Symbol inner = null;
            for (long o = offset; o <= offset + 4 && inner == null; o++) {
                inner = covering(sec.index(), o);
            }
            if (inner == null) {
                inner = covering(sec.index(), r.addend());
            }
            if (inner == null) {
                return false;
            }
            Symbol theirs = counterpart(inner);
            if (theirs == null || theirs.value() + (offset - inner.value()) != referenced) {
                return false;
            }
            return !sec.isExecutable() || !inner.isFunction() || inner.name().indexOf('.') < 0
                || sameCode(inner, theirs, visiting);
        }
        return sameBytes(sec, offset, referenced);
    }

    /** True when {@code t} (named) is the executable's symbol of that name at {@code address}. */
    private boolean isSymbol(Symbol t, long address) {
        if (t.isDefined() && t.sectionIndex() < obj.sections().size() && t.isLocal()) {
            Symbol g = counterpart(t);
            if (g == null || g.value() != address) {
                return false;
            }
            return !t.isFunction() || t.name().indexOf('.') < 0 || sameCode(t, g, new HashSet<>());
        }
        for (Symbol g : imageByName.getOrDefault(t.name(), List.of())) {
            if (g.value() == address) {
                return true; // global, or hidden (local in the executable): the same name at the same place
            }
        }
        return false;
    }

    /** The name a PLT entry at {@code address} jumps to (through its GOT slot), or "". */
    private String plt(long address) {
        Section s = sectionAt(address);
        if (s == null || !s.name().startsWith(".plt") && !s.name().equals(".iplt")) {
            return "";
        }
        byte[] code = read(address, 16);
        if (code == null) {
            return "";
        }
        for (int i = 0; i + 6 <= code.length; i++) {
            if (code[i] == (byte) 0xff && code[i + 1] == 0x25) {
                long slot = address + i + 6 + ElfReader.le(code).getInt(i + 2);
                return gotSlotNames.getOrDefault(slot, "");
            }
        }
        return "";
    }

    /** Read-only data: the bytes from {@code offset} (a string to its NUL, an entry, or the rest of the section). */
    private boolean sameBytes(Section sec, long offset, long referenced) {
        byte[] d = sec.data();
        if (offset < 0 || offset > d.length || sec.type() == Elf.SHT_NOBITS) {
            return false;
        }
        int from = (int) offset;
        int to = d.length;
        boolean strings = (sec.flags() & 0x20) != 0 || sec.name().startsWith(".rodata.str");
        if (strings) {
            to = from;
            while (to < d.length && d[to] != 0) {
                to++;
            }
            to = Math.min(d.length, to + 1);
        } else if ((sec.flags() & 0x10) != 0 && sec.size() > 0) {
            to = (int) Math.min(d.length, from + Math.max(1, entrySize(sec)));
        }
        if (to == d.length && to - from > 64) {
            return sameToTheEnd(sec, from, referenced - from);
        }
        byte[] theirs = read(referenced, to - from);
        if (theirs == null) {
            return false;
        }
        java.util.BitSet relocated = obj.relocatedBytes(sec.index());
        for (int i = from; i < to; i++) {
            if (!relocated.get(i) && d[i] != theirs[i - from]) {
                return false;
            }
        }
        return true;
    }

    /**
     * True when the section's bytes from {@code from} to its end are the executable's at {@code from + delta}
     * (relocated bytes aside). Every reference into one section placed as a whole has the same delta, so the
     * section is compared once per delta, from its end backwards, and each reference then costs O(1); a comparison
     * per reference was quadratic in the section's size. Past {@link #MAX_DELTAS} distinct deltas a section counts
     * as not proven the same (the conservative answer).
     */
    private boolean sameToTheEnd(Section sec, int from, long delta) {
        Map<Long, Integer> known = lastMismatch.computeIfAbsent(sec.index(), k -> new HashMap<>());
        Integer last = known.get(delta);
        if (last == null) {
            if (known.size() >= MAX_DELTAS) {
                return false;
            }
            byte[] d = sec.data();
            byte[] theirs = read(delta, d.length);
            int i = d.length - 1;
            if (theirs == null) {
                i = d.length; // the executable does not have the whole section there: nothing is proven
            } else {
                java.util.BitSet relocated = obj.relocatedBytes(sec.index());
                while (i >= 0 && (relocated.get(i) || d[i] == theirs[i])) {
                    i--;
                }
            }
            last = i;
            known.put(delta, last);
        }
        return from > last;
    }

    private static final int MAX_DELTAS = 64;
    /** Per section and delta: the last offset whose byte differs from the executable's ({@link #sameToTheEnd}). */
    private final Map<Integer, Map<Long, Integer>> lastMismatch = new HashMap<>();

    /** Entry size of a mergeable section (SHF_MERGE), from its name's {@code .cstN} suffix when present. */
    private static int entrySize(Section sec) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\.cst(\\d+)").matcher(sec.name());
        return m.find() ? Integer.parseInt(m.group(1)) : 1;
    }

    /** The object's named symbol in section {@code index} that covers {@code offset}. */
    private Symbol covering(int index, long offset) {
        Symbol best = null;
        for (Symbol s : sectionSymbols.covering(index, offset, offset, 16)) {
            // the first in the symbol table, a sized one before one without a size
            if (best == null || s.size() > 0 && best.size() == 0 || (s.size() > 0) == (best.size() > 0)
                && s.index() < best.index()) {
                best = s;
            }
        }
        return best;
    }

    private Section sectionAt(long address) {
        for (Section s : image.sections()) {
            if (s.isAlloc() && s.size() > 0 && address >= s.address() && address < s.address() + s.size()) {
                return s;
            }
        }
        return null;
    }

    /** {@code length} bytes of the executable at link-time {@code address}, or null when the file has none there. */
    private byte[] read(long address, int length) {
        Section s = sectionAt(address);
        if (s == null || s.type() == Elf.SHT_NOBITS || address + length > s.address() + s.data().length) {
            return null;
        }
        return slice(s.data(), address - s.address(), length);
    }

    private static byte[] slice(byte[] data, long from, int length) {
        return java.util.Arrays.copyOfRange(data, (int) from, (int) from + length);
    }
}
