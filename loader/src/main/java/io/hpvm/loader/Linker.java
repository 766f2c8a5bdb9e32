package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Links one function of a relocatable object into a target address space, JITLink style: relocations become edges
 * of a few {@link EdgeKind}s, the sections reachable from the entry symbol are laid out at a base address, GOT entries
 * and veneers are synthesised beside them, and every edge is fixed up. Nothing is written anywhere: the caller copies
 * {@link LinkedImage#bytes()} to the target only once linking has succeeded, so a failure changes nothing.
 *
 * <p>Binding rules: undefined names and global functions the object defines go to what the {@link SymbolResolver}
 * returns (the worker's stub, executable or libraries). Writable data must bind to the target's existing object of
 * that name: a patch is stateless. Local functions and read-only data are the object's own copies.
 */
public final class Linker {

    private static final long VENEER_SIZE = 16;
    /** Beyond this a PC-relative fixup cannot reach. */
    private static final long RANGE = Integer.MAX_VALUE;
    /** The largest image a link makes (a Java array), whatever room the caller has. */
    private static final long MAX_IMAGE = Integer.MAX_VALUE - 64;
    /** The largest section alignment honoured: a page. */
    static final long MAX_ALIGNMENT = 4096;

    private final RelocatableObject obj;
    private final String entryName;
    /** Every entry linked together (a patch set); they call each other's new code directly. */
    private final List<String> entryNames;
    private final SymbolResolver resolver;
    private final String objName;

    private final TreeSet<Integer> included = new TreeSet<>();
    private final Deque<Integer> work = new ArrayDeque<>();
    private final List<Edge> edges = new ArrayList<>();
    private final TreeSet<String> unresolved = new TreeSet<>();
    /** Set when an unresolved or refused name was referenced from a section that holds several functions. */
    private String sharedSection;
    private final Map<String, SymbolResolver.Resolution> bindings = new TreeMap<>();
    /** Where the image goes (known before linking: references can be judged near or far). */
    private long base;
    /** Sections whose bytes a relaxation rewrote (index -> new bytes), and relocations it made moot. */
    private final Map<Integer, byte[]> rewritten = new TreeMap<>();
    private final java.util.Set<String> dropped = new java.util.HashSet<>();
    /** The object's unwind information for the sections placed, or null. */
    private UnwindInfo unwind;
    /** The object's named symbols by section, indexed on first use. */
    private SectionSymbols bySection;
    /** Bytes the image may take. */
    private long capacity = MAX_IMAGE;

    /** A fixup: at {@code section+offset}, write {@code kind} of target (object section + offset, or absolute). */
    private record Edge(Section section, Relocation rel, EdgeKind kind, int targetSection, long targetValue,
                        String targetName, long symbolSize) {
        Edge(Section section, Relocation rel, EdgeKind kind, int targetSection, long targetValue, String targetName) {
            this(section, rel, kind, targetSection, targetValue, targetName, -1);
        }

        boolean isAbsoluteTarget() {
            return targetSection == ABSOLUTE;
        }
    }

    /** Edge target kinds that are not a section of the object. */
    private static final int ABSOLUTE = -1;
    private static final int GOT_BASE = -2;
    /** glibc gives the main program TLS module id 1. */
    private static final long EXECUTABLE_TLS_MODULE = 1;

    private Linker(RelocatableObject obj, List<String> entryNames, SymbolResolver resolver) {
        this.obj = obj;
        this.entryName = String.join(", ", entryNames);
        this.entryNames = entryNames;
        this.resolver = resolver;
        this.objName = obj.path().toString();
    }

    /**
     * Links {@code entryName} from {@code obj} for loading at {@code base}.
     *
     * @throws LoadException BAD_FILE when the object is malformed, LINK when it cannot be linked (unsupported
     *                       relocation, unresolved names, out-of-range fixups), REFUSED when a safety rule forbids it
     */
    public static LinkedImage link(RelocatableObject obj, String entryName, SymbolResolver resolver, long base)
        throws LoadException {
        return new Linker(obj, List.of(entryName), resolver).run(base);
    }

    /**
     * Links several functions of {@code obj} into one image (a patch set): their addresses are in
     * {@link LinkedImage#entries()}, and calls between them go to each other's new code, so a call that enters the
     * set's new code never runs an old member.
     */
    public static LinkedImage link(RelocatableObject obj, List<String> entryNames, SymbolResolver resolver, long base)
        throws LoadException {
        return link(obj, entryNames, resolver, base, MAX_IMAGE);
    }

    /**
     * Links a patch set into at most {@code capacity} bytes at {@code base}. The size is known from the section
     * headers before any byte is copied, so an image that cannot fit is refused (kind TOO_LARGE) at once, whatever
     * the object claims.
     */
    public static LinkedImage link(RelocatableObject obj, List<String> entryNames, SymbolResolver resolver, long base,
                                   long capacity) throws LoadException {
        Linker l = new Linker(obj, List.copyOf(entryNames), resolver);
        l.capacity = Math.min(capacity, MAX_IMAGE);
        return l.run(base);
    }

    /** Names of the functions an object defines, for messages. */
    public static List<String> definedFunctions(RelocatableObject obj) {
        List<String> names = new ArrayList<>();
        for (Symbol s : obj.symbols()) {
            if (s.isDefined() && s.isFunction() && !s.name().isEmpty()) {
                names.add(s.name());
            }
        }
        return names;
    }

    private LinkedImage run(long base) throws LoadException {
        this.base = base;
        List<Symbol> entries = new ArrayList<>();
        for (String name : entryNames) {
            Symbol entry = LinkChecks.entrySymbol(obj, objName, name);
            entries.add(entry);
            include(entry.sectionIndex());
        }
        drainWork();
        unwind = UnwindInfo.select(obj, included, obj.sections().size());
        if (unwind != null) {
            for (Relocation r : unwind.relocations()) {
                edges.add(edge(unwind.section(), r));
            }
            drainWork(); // the FDEs' language-specific data (.gcc_except_table) and what it refers to
        }
        if (!unresolved.isEmpty()) {
            throw new LoadException(LoadException.Kind.LINK, objName + ": cannot resolve " + unresolved.size()
                + " symbol(s) needed by '" + entryName + "': " + String.join(", ", unresolved)
                + " (looked in: the worker's patchable functions, its executable, its loaded shared libraries)"
                + sharedSectionHint());
        }
        return layout(base, entries);
    }

    private void drainWork() throws LoadException {
        while (!work.isEmpty()) {
            Section s = obj.section(work.poll());
            for (Relocation r : obj.relocations(s.index())) {
                if (!dropped.contains(s.index() + ":" + r.offset())) {
                    edges.add(edge(s, r));
                }
            }
        }
    }

    private void include(int sectionIndex) {
        if (included.add(sectionIndex)) {
            work.add(sectionIndex);
        }
    }

    private Edge edge(Section s, Relocation r) throws LoadException {
        if (r.type() == Elf.R_X86_64_GOTTPOFF || r.type() == Elf.R_X86_64_TPOFF32) {
            return tlsEdge(s, r);
        }
        if (r.type() == Elf.R_X86_64_TLSGD || r.type() == Elf.R_X86_64_TLSLD || r.type() == Elf.R_X86_64_DTPOFF32
            || r.type() == Elf.R_X86_64_DTPOFF64) {
            return dynamicTlsEdge(s, r);
        }
        if (Elf.isTlsRelocation(r.type())) {
            throw refusedTls(describe(obj.symbols().get(r.symbolIndex())), s.name() + "+" + Elf.hex(r.offset())
                + " (" + Elf.relocationName(r.type()) + "; TLS descriptors are not supported: compile the patch with "
                + "-mtls-dialect=gnu, the default)");
        }
        EdgeKind kind = EdgeKind.of(r.type());
        if (kind == null) {
            throw new LoadException(LoadException.Kind.LINK, objName + ": unsupported relocation "
                + Elf.relocationName(r.type()) + " at " + s.name() + "+" + Elf.hex(r.offset()) + " against '"
                + describe(obj.symbols().get(r.symbolIndex())) + "'");
        }
        if (r.offset() < 0 || r.offset() + kind.width() > s.size()) {
            throw new LoadException(LoadException.Kind.BAD_FILE, objName + ": relocation "
                + Elf.relocationName(r.type()) + " at " + s.name() + "+" + Elf.hex(r.offset())
                + " lies outside the section (size " + Elf.hex(s.size()) + ")");
        }
        Symbol sym = obj.symbols().get(r.symbolIndex());
        String where = s.name() + "+" + Elf.hex(r.offset());
        if (kind == EdgeKind.SIZE32 || kind == EdgeKind.SIZE64) {
            if (!sym.isDefined() || sym.type() == Elf.STT_SECTION) {
                throw new LoadException(LoadException.Kind.LINK, objName + ": " + Elf.relocationName(r.type()) + " at "
                    + where + " needs the size of '" + describe(sym) + "', which only a symbol the object defines has");
            }
            return new Edge(s, r, kind, ABSOLUTE, 0, sym.name(), sym.size());
        }
        if (kind == EdgeKind.GOT_BASE_PCREL32 || kind == EdgeKind.GOT_BASE_PCREL64
            || !sym.isDefined() && sym.name().equals("_GLOBAL_OFFSET_TABLE_")) {
            return new Edge(s, r, kind, GOT_BASE, 0, "_GLOBAL_OFFSET_TABLE_");
        }
        if (sym.type() == Elf.STT_SECTION) {
            return sectionEdge(s, r, kind, obj.section(sym.sectionIndex()), where);
        }
        if (!sym.isDefined()) {
            SymbolResolver.Resolution res = resolver.resolve(sym.name(), sym);
            if (res == null) {
                if (sym.bind() != Elf.STB_WEAK) {
                    unresolved.add(sym.name());
                    noteShared(s);
                }
                return new Edge(s, r, kind, ABSOLUTE, 0, sym.name());
            }
            bindings.put(sym.name(), res);
            if (kind == EdgeKind.PCREL32 && !fits(res.address() - base) && leaToGotLoad(s, r)) {
                return new Edge(s, r, EdgeKind.GOT_PCREL32, ABSOLUTE, res.address(), sym.name());
            }
            return new Edge(s, r, kind, ABSOLUTE, res.address(), sym.name());
        }
        if (sym.sectionIndex() == Elf.SHN_ABS) {
            return new Edge(s, r, kind, ABSOLUTE, sym.value(), sym.name());
        }
        if (sym.sectionIndex() == Elf.SHN_COMMON) {
            return new Edge(s, r, kind, ABSOLUTE, bindData(s, sym, 0, where), sym.name());
        }
        Section target = obj.section(sym.sectionIndex());
        if (target.isTls() || sym.type() == Elf.STT_TLS) {
            throw refusedTls(sym.name(), where);
        }
        if (target.isWritableData() && !isUnwindTable(s)) {
            return new Edge(s, r, kind, ABSOLUTE, bindData(s, sym, 0, where), sym.name());
        }
        if (target.isExecutable() && !sym.isLocal() && !(entryNames.size() > 1 && entryNames.contains(sym.name()))) {
            // A global function the worker already has: call the worker's (its stub when patchable, so the
            // patched code always calls current versions; the entry itself included).
            SymbolResolver.Resolution res = resolver.resolve(sym.name(), sym);
            if (res != null) {
                bindings.put(sym.name(), res);
                return new Edge(s, r, kind, ABSOLUTE, res.address(), sym.name());
            }
        }
        if (!target.isExecutable() && !sym.isLocal() && obj.inComdatGroup(target.index())) {
            // Read-only data of a COMDAT group (a function-local static const of an inline function, a vtable, a
            // type_info): like a linker keeping the first copy, use the worker's when it has one, so addresses
            // compare equal between old and new code.
            SymbolResolver.Resolution res = resolver.resolve(sym.name(), sym);
            if (res != null) {
                bindings.put(sym.name(), res);
                return new Edge(s, r, kind, ABSOLUTE, res.address(), sym.name());
            }
        }
        requireAlloc(target, where);
        LinkChecks.checkTarget(objName, s, bytesOf(s), r, kind, target, sym.value(), where);
        include(target.index());
        return new Edge(s, r, kind, target.index(), sym.value(), sym.name());
    }

    /**
     * Initial-exec and local-exec access to a thread-local variable the worker already has (static TLS): the edge
     * carries the variable's offset from the thread pointer. A patch cannot add thread-local variables.
     */
    private Edge tlsEdge(Section s, Relocation r) throws LoadException {
        Symbol sym = obj.symbols().get(r.symbolIndex());
        String where = s.name() + "+" + Elf.hex(r.offset());
        sym = tlsVariable(sym, r, where);
        Long tpoff = sym.name().isEmpty() ? null : resolver.threadPointerOffset(sym.name(), sym);
        if (tpoff == null && r.type() == Elf.R_X86_64_GOTTPOFF) {
            Edge viaWorkerGot = workerTpoffSlot(s, r, sym, r.offset(), r.addend(), where);
            if (viaWorkerGot != null) {
                return viaWorkerGot;
            }
        }
        if (tpoff == null) {
            throw noSuchTls(sym, r, where);
        }
        bindings.put(sym.name(), new SymbolResolver.Resolution(tpoff, "thread-local, %fs" + (tpoff < 0 ? "" : "+")
            + tpoff));
        return new Edge(s, r, EdgeKind.of(r.type()), ABSOLUTE, tpoff, sym.name());
    }

    /**
     * A shared library's thread-local variable that the executable itself uses (initial-exec: a GOT slot the dynamic
     * linker filled with the variable's offset from the thread pointer): the patch's fixup at {@code offset} reads
     * that very slot. Null when the executable has no such slot.
     */
    private Edge workerTpoffSlot(Section s, Relocation r, Symbol sym, long offset, long addend, String where) {
        Long slot = sym.name().isEmpty() ? null : resolver.tpoffSlot(sym.name());
        if (slot == null) {
            return null;
        }
        bindings.put(sym.name(), new SymbolResolver.Resolution(slot, "thread-local of a library, through the "
            + "executable's GOT slot"));
        return new Edge(s, new Relocation(offset, Elf.R_X86_64_PC32, r.symbolIndex(), addend), EdgeKind.PCREL32,
            ABSOLUTE, slot, sym.name());
    }

    /**
     * General-dynamic access to a shared library's thread-local variable: relaxed to initial-exec, as a linker does
     * for an executable. The 16 bytes {@code data16 lea x@tlsgd(%rip),%rdi; data16 data16 rex64 call
     * __tls_get_addr} become {@code mov %fs:0,%rax; add x@gottpoff(%rip),%rax}, reading the executable's GOT slot for
     * x; the call's relocation is dropped. Null when the bytes are not that sequence or there is no such slot.
     */
    private Edge relaxGeneralDynamic(Section s, Relocation r, Symbol sym, String where) {
        byte[] d = bytesOf(s);
        int at = (int) r.offset();
        if (at < 4 || at + 12 > d.length || (d[at - 4] & 0xff) != 0x66 || (d[at - 3] & 0xff) != 0x48
            || (d[at - 2] & 0xff) != 0x8d || (d[at - 1] & 0xff) != 0x3d || (d[at + 4] & 0xff) != 0x66
            || (d[at + 5] & 0xff) != 0x66 || (d[at + 6] & 0xff) != 0x48 || (d[at + 7] & 0xff) != 0xe8) {
            return null;
        }
        Edge e = workerTpoffSlot(s, r, sym, at + 8, -4, where);
        if (e == null) {
            return null;
        }
        byte[] ie = {0x64, 0x48, (byte) 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x48, 0x03, 0x05, 0, 0, 0, 0};
        System.arraycopy(ie, 0, writableBytesOf(s), at - 4, ie.length);
        dropped.add(s.index() + ":" + (at + 8));
        return e;
    }

    /**
     * Code compiled for an executable takes the address of a shared library's object with {@code lea x(%rip)}, which
     * the program's linker would have served with a copy relocation. The patch sits far from the library, so the
     * {@code lea} becomes {@code mov x@GOTPCREL(%rip)} (the reverse of the linker's GOT relaxation; same length,
     * same result), reading a GOT entry made beside the code. True when the fixup is such a {@code lea}.
     */
    private boolean leaToGotLoad(Section s, Relocation r) {
        byte[] d = bytesOf(s);
        int at = (int) r.offset();
        if (r.addend() != -4 || at < 3 || at + 4 > d.length || (d[at - 2] & 0xff) != 0x8d
            || (d[at - 1] & 0xc7) != 0x05 || (d[at - 3] & 0xf8) != 0x48) {
            return false;
        }
        writableBytesOf(s)[at - 2] = (byte) 0x8b;
        return true;
    }

    private byte[] bytesOf(Section s) {
        return rewritten.getOrDefault(s.index(), s.data());
    }

    /** The section's bytes for a relaxation to edit: copied once per section (the object's own stay as read). */
    private byte[] writableBytesOf(Section s) {
        return rewritten.computeIfAbsent(s.index(), k -> s.data().clone());
    }

    /**
     * General- and local-dynamic access to a thread-local variable of the worker's executable (TLS module 1): the
     * code asks {@code __tls_get_addr} with a GOT pair {module, offset}, made beside the code, then (local-dynamic)
     * adds the variable's offset in the block. The code is kept as the compiler wrote it (no relaxation).
     */
    private Edge dynamicTlsEdge(Section s, Relocation r) throws LoadException {
        EdgeKind kind = EdgeKind.of(r.type());
        Symbol sym = obj.symbols().get(r.symbolIndex());
        String where = s.name() + "+" + Elf.hex(r.offset());
        if (kind == EdgeKind.TLS_LD_PCREL32) {
            return new Edge(s, r, kind, ABSOLUTE, 0, "(the executable's TLS block)");
        }
        sym = tlsVariable(sym, r, where);
        Long offset = sym.name().isEmpty() ? null : resolver.moduleTlsOffset(sym.name(), sym);
        if (offset == null && kind == EdgeKind.TLS_GD_PCREL32) {
            Edge relaxed = relaxGeneralDynamic(s, r, sym, where);
            if (relaxed != null) {
                return relaxed;
            }
        }
        if (offset == null) {
            throw noSuchTls(sym, r, where);
        }
        bindings.put(sym.name(), new SymbolResolver.Resolution(offset, "thread-local, module 1 +" + offset));
        return new Edge(s, r, kind, ABSOLUTE, offset, sym.name());
    }

    private Edge sectionEdge(Section s, Relocation r, EdgeKind kind, Section target, String where)
        throws LoadException {
        if (target.isTls()) {
            throw refusedTls(target.name(), where);
        }
        if (target.isWritableData() && !isUnwindTable(s)) {
            Symbol covering = coveringSymbol(target, r, kind, where);
            return new Edge(s, r, kind, ABSOLUTE, bindData(s, covering, covering.value(), where), covering.name());
        }
        requireAlloc(target, where);
        LinkChecks.checkTarget(objName, s, bytesOf(s), r, kind, target, 0, where);
        include(target.index());
        return new Edge(s, r, kind, target.index(), 0, target.name());
    }

    /**
     * The assembler turns references to local data into "section + offset". Map it back to the named object so it
     * can bind by name. For PC-relative fixups the addend also holds the distance from the fixup to the end of the
     * instruction (-4 to -8), so any object covering offsets A+4..A+8 may be meant; more than one is refused rather
     * than guessed.
     */
    private Symbol coveringSymbol(Section target, Relocation r, EdgeKind kind, String where) throws LoadException {
        long lo = kind.isPcRelative() ? r.addend() + 4 : r.addend();
        long hi = kind.isPcRelative() ? r.addend() + 8 : r.addend();
        List<Symbol> found = symbols().covering(target.index(), lo, hi, 2);
        if (found.size() == 1) {
            return found.get(0);
        }
        String names = found.stream().map(Symbol::name).reduce((a, b) -> a + ", " + b).orElse("no named object");
        throw new LoadException(LoadException.Kind.REFUSED, objName + ": the relocation "
            + Elf.relocationName(r.type()) + " at " + where + " refers to " + target.name() + "+" + Elf.hex(r.addend())
            + ", which cannot be tied to exactly one named variable (" + names + "); a patch may only use the "
            + "worker's existing variables, so hpvm refuses rather than guess");
    }

    /**
     * The unwinder's tables. What they point at in writable sections are 8-byte pointer cells it only reads: gcc's
     * {@code DW.ref.NAME} (the personality routine, a type_info) and clang's unnamed type_info cells in plain
     * {@code .data}. Writable only so that the dynamic linker can fill them in; nothing writes them at run time, so
     * they are placed with the patch (or, being COMDAT, bound to the worker's copy) instead of bound as variables.
     */
    private static boolean isUnwindTable(Section s) {
        return s.name().startsWith(".gcc_except_table") || s.name().equals(".eh_frame");
    }

    private long bindData(Section from, Symbol sym, long symbolOffset, String where) throws LoadException {
        SymbolResolver.Resolution res = sym.name().isEmpty() ? null : resolver.resolve(sym.name(), sym);
        if (res == null) {
            noteShared(from);
            throw new LoadException(LoadException.Kind.REFUSED, objName + ": '" + entryName + "' uses writable data '"
                + sym.name() + "' (" + sym.size() + " bytes, referenced at " + where + ") that the worker does not "
                + "have. A patch must be stateless: it may read and update the worker's existing globals and "
                + "statics (they bind by name), but it cannot add new ones" + sharedSectionHint() + ".");
        }
        bindings.put(sym.name(), res);
        return res.address() - symbolOffset;
    }

    private void noteShared(Section s) {
        if (sharedSection == null && symbols().functions(s.index()) > 1) {
            sharedSection = s.name();
        }
    }

    private SectionSymbols symbols() {
        if (bySection == null) {
            bySection = new SectionSymbols(obj);
        }
        return bySection;
    }

    private String sharedSectionHint() {
        return sharedSection == null ? "" : ". The reference is in " + sharedSection + ", which holds other functions "
            + "too: if '" + entryName + "' itself does not need it, compile the patch with -ffunction-sections "
            + "-fdata-sections so that only what '" + entryName + "' reaches is linked";
    }

    /** The named thread-local variable a TLS relocation means ({@code .tbss+A} mapped back to its symbol). */
    private Symbol tlsVariable(Symbol sym, Relocation r, String where) throws LoadException {
        // Looked up at offset A, as TPOFF32 and DTPOFF32 mean it (both kinds are absolute).
        return sym.type() == Elf.STT_SECTION ? coveringSymbol(obj.section(sym.sectionIndex()), r, EdgeKind.DTPOFF32,
            where) : sym;
    }

    private LoadException noSuchTls(Symbol sym, Relocation r, String where) {
        return refusedTls(sym.name(), where + " (" + Elf.relocationName(r.type()) + "): the worker has no such "
            + "thread-local variable in its executable, and its executable never uses one of that name from a "
            + "shared library");
    }

    private LoadException refusedTls(String name, String where) {
        return new LoadException(LoadException.Kind.REFUSED, objName + ": '" + entryName
            + "' uses thread-local data '" + name + "' (referenced at " + where + "); a patch may use the executable's "
            + "thread-local variables and the shared libraries' ones the executable uses itself, but cannot add any");
    }

    private void requireAlloc(Section target, String where) throws LoadException {
        if (!target.isAlloc()) {
            throw new LoadException(LoadException.Kind.BAD_FILE, objName + ": code at " + where
                + " refers to non-loadable section " + target.name());
        }
    }

    private LinkedImage layout(long base, List<Symbol> entries) throws LoadException {
        Map<Integer, Long> addressOf = new TreeMap<>();
        Map<String, Long> placed = new LinkedHashMap<>();
        List<long[]> codeRanges = new ArrayList<>();
        long cursor = base;
        for (boolean code : new boolean[] {true, false}) {
            for (int index : included) {
                Section s = obj.section(index);
                if (s.isExecutable() != code) {
                    continue;
                }
                if (s.alignment() > MAX_ALIGNMENT) {
                    throw new LoadException(LoadException.Kind.LINK, objName + ": section " + s.name() + " asks for "
                        + s.alignment() + "-byte alignment; hpvm aligns a patch's sections to at most "
                        + MAX_ALIGNMENT + " bytes");
                }
                cursor = align(cursor, Math.max(1, s.alignment()));
                checkRoom(cursor, s.size(), s.name());
                addressOf.put(index, cursor);
                placed.put(s.name(), cursor);
                if (code) {
                    codeRanges.add(new long[] {cursor, cursor + s.size()});
                }
                cursor += s.size();
            }
        }
        long unwindAt = 0;
        if (unwind != null) {
            unwindAt = align(cursor, 8);
            addressOf.put(unwind.section().index(), unwindAt);
            cursor = unwindAt + unwind.section().size();
        }
        // GOT entries: one per distinct absolute target of a GOT-relative edge.
        cursor = align(cursor, 8);
        long gotBase = cursor;
        Map<Long, Long> got = new LinkedHashMap<>();
        Map<Long, Long> tlsGot = new LinkedHashMap<>();
        for (Edge e : edges) {
            if (e.kind() == EdgeKind.GOT_PCREL32) {
                long target = targetAddress(e, addressOf, gotBase);
                if (!got.containsKey(target)) {
                    got.put(target, cursor);
                    cursor += 8;
                }
            } else if (e.kind() == EdgeKind.GOT_TPOFF_PCREL32 && !tlsGot.containsKey(e.targetValue())) {
                tlsGot.put(e.targetValue(), cursor);
                cursor += 8;
            }
        }
        // tls_index pairs {module 1, offset} for __tls_get_addr, one per distinct offset (local-dynamic: offset 0).
        Map<Long, Long> tlsPairs = new LinkedHashMap<>();
        for (Edge e : edges) {
            if ((e.kind() == EdgeKind.TLS_GD_PCREL32 || e.kind() == EdgeKind.TLS_LD_PCREL32)
                && !tlsPairs.containsKey(e.targetValue())) {
                tlsPairs.put(e.targetValue(), cursor);
                cursor += 16;
            }
        }
        // Veneers for branches whose absolute target is out of reach from anywhere in the image.
        long worstEnd = align(cursor, VENEER_SIZE) + VENEER_SIZE * edges.size();
        cursor = align(cursor, VENEER_SIZE);
        Map<Long, Long> veneers = new LinkedHashMap<>();
        for (Edge e : edges) {
            if (e.kind() == EdgeKind.BRANCH_PCREL32 && e.isAbsoluteTarget()) {
                long target = e.targetValue();
                boolean reachable = fits(target - base) && fits(target - worstEnd);
                if (!reachable && !veneers.containsKey(target)) {
                    veneers.put(target, cursor);
                    cursor += VENEER_SIZE;
                }
            }
        }
        checkRoom(cursor, 0, "GOT entries and veneers");
        long size = cursor - base;
        byte[] image = new byte[(int) size];
        ByteBuffer out = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        for (Map.Entry<Integer, Long> p : addressOf.entrySet()) {
            Section s = unwind != null && p.getKey() == unwind.section().index() ? unwind.section()
                : obj.section(p.getKey());
            if (s.type() != Elf.SHT_NOBITS) {
                byte[] data = bytesOf(s);
                System.arraycopy(data, 0, image, (int) (p.getValue() - base), data.length);
            }
        }
        for (Map<Long, Long> table : List.of(got, tlsGot)) {
            for (Map.Entry<Long, Long> g : table.entrySet()) {
                out.putLong((int) (g.getValue() - base), g.getKey());
            }
        }
        for (Map.Entry<Long, Long> t : tlsPairs.entrySet()) {
            out.putLong((int) (t.getValue() - base), EXECUTABLE_TLS_MODULE).putLong((int) (t.getValue() - base) + 8,
                t.getKey());
        }
        for (Map.Entry<Long, Long> v : veneers.entrySet()) {
            int at = (int) (v.getValue() - base);
            // jmp qword ptr [rip+0]; .quad target; int3 int3
            out.put(at, (byte) 0xff).put(at + 1, (byte) 0x25).putInt(at + 2, 0).putLong(at + 6, v.getKey());
            out.put(at + 14, (byte) 0xcc).put(at + 15, (byte) 0xcc);
        }
        for (Edge e : edges) {
            long p = addressOf.get(e.section().index()) + e.rel().offset();
            int at = (int) (p - base);
            long s = targetAddress(e, addressOf, gotBase);
            long a = e.rel().addend();
            switch (e.kind()) {
                case POINTER64 -> out.putLong(at, s + a);
                case PCREL32 -> out.putInt(at, checked(e, s + a - p, s, p));
                case BRANCH_PCREL32 -> {
                    long via = e.isAbsoluteTarget() && veneers.containsKey(s) ? veneers.get(s) : s;
                    out.putInt(at, checked(e, via + a - p, s, p));
                }
                case POINTER32 -> {
                    long v = s + a;
                    if (v < 0 || v > 0xffffffffL) {
                        throw overflow(e, s, p, "does not fit in 32 bits unsigned; recompile the patch with -fPIE");
                    }
                    out.putInt(at, (int) v);
                }
                case POINTER32_SIGNED -> out.putInt(at, checked(e, s + a, s, p));
                case GOT_PCREL32 -> out.putInt(at, checked(e, got.get(s) + a - p, s, p));
                case PCREL64 -> out.putLong(at, s + a - p);
                case GOT_OFFSET64 -> out.putLong(at, s + a - gotBase);
                case GOT_BASE_PCREL32 -> out.putInt(at, checked(e, gotBase + a - p, gotBase, p));
                case GOT_BASE_PCREL64 -> out.putLong(at, gotBase + a - p);
                case SIZE32 -> {
                    long v = e.symbolSize() + a;
                    if (v < 0 || v > 0xffffffffL) {
                        throw overflow(e, v, p, "does not fit in 32 bits unsigned");
                    }
                    out.putInt(at, (int) v);
                }
                case SIZE64 -> out.putLong(at, e.symbolSize() + a);
                case GOT_TPOFF_PCREL32 -> out.putInt(at, checked(e, tlsGot.get(e.targetValue()) + a - p, s, p));
                case TPOFF32 -> out.putInt(at, checked(e, e.targetValue() + a, s, p));
                case TLS_GD_PCREL32, TLS_LD_PCREL32 -> out.putInt(at, checked(e, tlsPairs.get(e.targetValue()) + a - p,
                    s, p));
                case DTPOFF32 -> out.putInt(at, checked(e, e.targetValue() + a, s, p));
                case DTPOFF64 -> out.putLong(at, e.targetValue() + a);
                default -> throw new IllegalStateException(e.kind().toString());
            }
        }
        Map<String, Long> entryAddresses = new LinkedHashMap<>();
        for (int k = 0; k < entries.size(); k++) {
            entryAddresses.put(entryNames.get(k), addressOf.get(entries.get(k).sectionIndex()) + entries.get(k).value());
        }
        Map<Long, Long> functions = new java.util.HashMap<>();
        for (Symbol sym : obj.symbols()) {
            Long at = sym.isFunction() && sym.size() > 0 ? addressOf.get(sym.sectionIndex()) : null;
            if (at != null && obj.section(sym.sectionIndex()).isExecutable()) {
                functions.merge(at + sym.value(), at + sym.value() + sym.size(), Math::max);
            }
        }
        return new LinkedImage(base, image, entryAddresses.get(entryNames.get(0)), placed, bindings,
            got.size() + tlsGot.size() + 2 * tlsPairs.size(), veneers.size(), codeRanges, entryAddresses, unwindAt,
            functions, Map.copyOf(addressOf));
    }

    /** Refuses an image that would not fit in {@link #capacity} once {@code size} more bytes go at {@code at}. */
    private void checkRoom(long at, long size, String what) throws LoadException {
        long used = at - base;
        if (size < 0 || used > capacity || size > capacity - used) {
            throw new LoadException(LoadException.Kind.TOO_LARGE, objName + ": '" + entryName + "' does not fit in "
                + "the " + capacity + " bytes available (" + what + " alone is " + Long.toUnsignedString(size)
                + " bytes, at offset " + used + " of the image)");
        }
    }

    private static long targetAddress(Edge e, Map<Integer, Long> addressOf, long gotBase) {
        return switch (e.targetSection()) {
            case ABSOLUTE -> e.targetValue();
            case GOT_BASE -> gotBase;
            default -> addressOf.get(e.targetSection()) + e.targetValue();
        };
    }

    private int checked(Edge e, long value, long target, long fixup) throws LoadException {
        if (!fits(value)) {
            throw overflow(e, target, fixup, "is beyond +-2 GiB of the fixup"
                + (e.kind() == EdgeKind.PCREL32 ? "; data in a shared library needs a GOT access: recompile the patch "
                + "with -fPIC" : ""));
        }
        return (int) value;
    }

    private LoadException overflow(Edge e, long target, long fixup, String why) {
        return new LoadException(LoadException.Kind.LINK, objName + ": relocation "
            + Elf.relocationName(e.rel().type()) + " (" + e.kind() + ") at " + e.section().name() + "+"
            + Elf.hex(e.rel().offset()) + " (address " + Elf.hex(fixup) + ") to '" + e.targetName() + "' at "
            + Elf.hex(target) + " " + why);
    }

    private static boolean fits(long v) {
        return v >= Integer.MIN_VALUE && v <= RANGE;
    }

    private static long align(long v, long a) {
        return (v + a - 1) / a * a;
    }

    private static String describe(Symbol s) {
        return s.type() == Elf.STT_SECTION ? "section " + s.sectionIndex() : s.name();
    }
}
