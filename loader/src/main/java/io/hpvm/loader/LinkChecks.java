package io.hpvm.loader;

import java.util.List;

/**
 * The linker's checks of what an object says about itself, beyond the reader's: that the symbol a swap enters is a
 * real, sized function, and that every reference into a section the patch places lands inside it. A patch that
 * fails them would have the worker run or read bytes that are not the object's.
 */
final class LinkChecks {

    private LinkChecks() {
    }

    /**
     * The symbol a swap enters: a function the object defines, in an executable section, with an honest extent. Each
     * refusal says why the symbol of that name does not count.
     */
    static Symbol entrySymbol(RelocatableObject obj, String objName, String name) throws LoadException {
        Symbol found = obj.definedSymbol(name);
        if (found == null) {
            boolean referenced = obj.symbols().stream().anyMatch(s -> s.name().equals(name) && !s.isDefined());
            List<String> fns = Linker.definedFunctions(obj);
            throw new LoadException(LoadException.Kind.LINK, objName + (referenced ? " only refers to '" + name
                + "' (an undefined symbol there); it does not define it" : " defines no function '" + name + "'")
                + (fns.isEmpty() ? " (it defines no functions)" : " (functions it defines: " + String.join(", ",
                fns.subList(0, Math.min(fns.size(), 20))) + (fns.size() > 20 ? ", ..." : "") + ")"));
        }
        String what = objName + ": '" + name + "' (symbol " + found.index() + ")";
        if (found.sectionIndex() == Elf.SHN_ABS || found.sectionIndex() == Elf.SHN_COMMON) {
            throw new LoadException(LoadException.Kind.LINK, what + " is " + (found.sectionIndex() == Elf.SHN_ABS
                ? "an absolute value" : "a common (uninitialised) variable") + ", not code in a section");
        }
        Section sec = obj.section(found.sectionIndex());
        if (!sec.isExecutable() || !sec.isAlloc()) {
            throw new LoadException(LoadException.Kind.LINK, what + " is defined in section " + sec.name()
                + ", which is not executable code: it is " + (found.type() == Elf.STT_FUNC ? "marked a function but "
                + "is not one" : "data, not a function"));
        }
        if (found.type() == Elf.STT_GNU_IFUNC) {
            throw new LoadException(LoadException.Kind.LINK, what + " is an IFUNC resolver (STT_GNU_IFUNC): it "
                + "returns the implementation to use rather than being one; swap the implementation instead");
        }
        if (found.type() != Elf.STT_FUNC && found.type() != Elf.STT_NOTYPE) {
            throw new LoadException(LoadException.Kind.LINK, what + " is of type "
                + RelocatableObject.typeName(found.type()) + " in " + sec.name() + ", not a function");
        }
        if (found.size() == 0) {
            throw new LoadException(LoadException.Kind.LINK, what + " has size 0 (st_size), so where the function "
                + "ends is unknown; the compiler always sets it: in assembly, add '.type " + name + ", @function' and "
                + "'.size " + name + ", .-" + name + "'");
        }
        return found;
    }

    /** How far outside a data section a reference's constant offset may reach (a[i - 1000], end pointers). */
    static final long DATA_SLACK = 65536;

    /**
     * A fixup that reaches into a section the patch places must land inside it, or the new code would run or read
     * bytes that are not the object's. Exact for branches (the target is S + A + 4, the end of the rel32 field); an
     * address taken from code may be up to 4 bytes lower (an immediate follows the field); data may be addressed
     * with a constant offset that leaves the section by at most {@link #DATA_SLACK} bytes.
     */
    static void checkTarget(String objName, Section from, byte[] fromBytes, Relocation r, EdgeKind kind,
                            Section target, long value, String where) throws LoadException {
        boolean fromCode = from.isExecutable();
        boolean rel32 = kind == EdgeKind.PCREL32 || kind == EdgeKind.BRANCH_PCREL32;
        long offset = kind == EdgeKind.GOT_PCREL32 ? value : value + r.addend() + (fromCode && rel32 ? 4 : 0);
        long lo;
        long hi;
        if (!target.isExecutable()) {
            lo = -DATA_SLACK;
            hi = target.size() + DATA_SLACK;
        } else if (fromCode && rel32 && isBranch(fromBytes, r.offset())) {
            lo = 0;
            hi = target.size() - 1;
        } else {
            lo = fromCode && rel32 ? -4 : 0;
            hi = target.size();
        }
        if (offset < lo || offset > hi) {
            throw new LoadException(LoadException.Kind.BAD_FILE, objName + ": relocation "
                + Elf.relocationName(r.type()) + " at " + where + " reaches " + target.name() + (offset < 0 ? "-"
                + Elf.hex(-offset) : "+" + Elf.hex(offset)) + " (symbol value " + Elf.hex(value) + ", addend "
                + r.addend() + "), outside " + target.name() + ", which is " + Elf.hex(target.size()) + " bytes"
                + (target.isExecutable() ? "" : " (a constant offset may leave it by at most " + DATA_SLACK
                + " bytes)"));
        }
    }

    /** True when the rel32 field at {@code offset} of a code section is a call, jmp or jcc displacement. */
    private static boolean isBranch(byte[] d, long offset) {
        int at = (int) offset;
        int op = at >= 1 ? d[at - 1] & 0xff : -1;
        int esc = at >= 2 ? d[at - 2] & 0xff : -1;
        return op == 0xe8 || op == 0xe9 || esc == 0x0f && op >= 0x80 && op <= 0x8f;
    }
}
