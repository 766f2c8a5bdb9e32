package io.hpvm.loader;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The call frame information of one {@code .eh_frame}, for unwinding another process's stack: which FDE covers a pc
 * and what its rules say there, the canonical frame address (CFA) and where the caller's registers were saved. What
 * {@code hpvm swap --quiesce} uses to list the functions each thread is inside of, precisely, where a scan of the
 * stack for return addresses would also see stale ones.
 *
 * <p>Addresses are those the table was parsed at: an executable's or library's link-time addresses for
 * {@link #ofFile} (the caller subtracts the load bias from a pc), run-time addresses for a table read from memory
 * ({@link #parse} with the address it was read from). The index is built once (every FDE's pc range, sorted); rules
 * are computed per lookup, running the CIE's and the FDE's instructions up to the pc.
 *
 * <p>References: the LSB's "Exception Frames" chapter (record layout, augmentations, pointer encodings), DWARF 5
 * section 6.4 (the instructions), the x86-64 psABI figure 3.36 (register numbers: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi,
 * 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15, 16 the return address).
 */
public final class CallFrameInfo {

    /** DWARF registers tracked: the 16 general-purpose ones and the return address column. */
    public static final int REGISTERS = 17;
    public static final int RSP = 7;
    public static final int RA = 16;

    private static final int SAME = 0, UNDEFINED = 1, OFFSET = 2, VAL_OFFSET = 3, REGISTER = 4, EXPRESSION = 5,
        VAL_EXPRESSION = 6;

    /**
     * One frame unwound.
     *
     * @param caller      the caller's registers (its pc in {@link #RA}); null when the frame is the outermost (its
     *                    return address column is undefined: {@code _start}, a thread's start routine)
     * @param signalFrame whether the frame was a signal handler's return trampoline: the caller's pc is then where
     *                    the signal interrupted it, not a return address
     */
    public record Step(long[] caller, boolean signalFrame, long cfa) {
    }

    private record Cie(int encoding, boolean signalFrame, long codeAlign, long dataAlign, int raColumn, int start,
                       int end, boolean augmented) {
    }

    private record Resolved(Cie cie, Rules rules) {
    }

    /** The rules in force at one pc (never changed once {@link #resolve} returned them). */
    private static final class Rules implements Cloneable {
        int cfaRegister = RSP;
        long cfaOffset;
        byte[] cfaExpression;
        int[] kind = new int[REGISTERS];
        long[] value = new long[REGISTERS];
        byte[][] expression = new byte[REGISTERS][];

        @Override
        public Rules clone() {
            try {
                Rules r = (Rules) super.clone();
                r.kind = kind.clone();
                r.value = value.clone();
                r.expression = expression.clone();
                return r;
            } catch (CloneNotSupportedException e) {
                throw new AssertionError(e);
            }
        }
    }

    private final byte[] data;
    private final long address;
    private final long[] starts;
    private final long[] ends;
    private final int[] fdes;
    private final Map<Integer, Cie> cies = new ConcurrentHashMap<>();
    /** The rules found at each pc looked up so far: a walk of the same stacks again only applies them. */
    private final Map<Long, Resolved> resolved = new ConcurrentHashMap<>();
    /** The file's PT_LOAD segments ({@link #ofFile}), for {@link #bias}. */
    private List<Segment> loads = List.of();

    private CallFrameInfo(byte[] data, long address, long[] starts, long[] ends, int[] fdes) {
        this.data = data;
        this.address = address;
        this.starts = starts;
        this.ends = ends;
        this.fdes = fdes;
    }

    /**
     * Indexes the {@code .eh_frame} records in {@code data}, which sits at {@code address}; stops at a zero
     * terminator or the end of {@code data} (a table read from memory may be followed by anything).
     */
    public static CallFrameInfo parse(byte[] data, long address) throws LoadException {
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        List<long[]> index = new ArrayList<>();
        Map<Integer, Cie> cies = new java.util.HashMap<>();
        int o = 0;
        try {
            while (o + 4 <= data.length) {
                long length = Integer.toUnsignedLong(b.getInt(o));
                if (length == 0) {
                    break;
                }
                if (length == 0xffffffffL || length < 4 || o + 4 + length > data.length) {
                    throw bad(address + o, "has a length hpvm cannot read (" + Elf.hex(length) + ")");
                }
                int end = (int) (o + 4 + length);
                int id = b.getInt(o + 4);
                if (id != 0) {
                    int cieAt = o + 4 - id;
                    Cie cie = cies.get(cieAt);
                    if (cie == null) {
                        cie = cie(data, address, cieAt);
                        cies.put(cieAt, cie);
                    }
                    b.position(o + 8);
                    long begin = pointer(b, cie.encoding, address);
                    long range = pointer(b, cie.encoding & 0x0f, address);
                    if (range > 0 && begin != 0) {
                        index.add(new long[] {begin, begin + range, o});
                    }
                }
                o = end;
            }
        } catch (BufferUnderflowException | IndexOutOfBoundsException e) {
            throw bad(address + o, "is cut short");
        }
        index.sort((x, y) -> Long.compareUnsigned(x[0], y[0]));
        long[] starts = new long[index.size()];
        long[] ends = new long[index.size()];
        int[] fdes = new int[index.size()];
        for (int i = 0; i < fdes.length; i++) {
            starts[i] = index.get(i)[0];
            ends[i] = index.get(i)[1];
            fdes[i] = (int) index.get(i)[2];
        }
        CallFrameInfo table = new CallFrameInfo(data, address, starts, ends, fdes);
        table.cies.putAll(cies);
        return table;
    }

    /**
     * The {@code .eh_frame} of an executable or shared library at link-time addresses, or null when it has none
     * (code built with {@code -fno-asynchronous-unwind-tables}, or a file stripped of section headers).
     */
    public static CallFrameInfo ofFile(Path path) throws LoadException {
        ElfReader r = ElfReader.open(path, Elf.ET_EXEC, Elf.ET_DYN);
        Section eh = r.section(".eh_frame");
        if (eh == null || eh.type() == Elf.SHT_NOBITS || eh.size() == 0) {
            return null;
        }
        CallFrameInfo table = parse(eh.data(), eh.address());
        table.loads = r.segments.stream().filter(g -> g.type() == Elf.PT_LOAD).toList();
        return table;
    }

    /**
     * The load bias of a file read by {@link #ofFile} that a process mapped at {@code mapStart} from file offset
     * {@code fileOffset} (a line of {@code /proc/PID/maps}): what to subtract from a pc there to look it up.
     */
    public long bias(long mapStart, long fileOffset) throws LoadException {
        for (Segment g : loads) {
            if (fileOffset >= g.offset() && fileOffset < g.offset() + Math.max(1, g.fileSize())) {
                return mapStart - (g.vaddr() + fileOffset - g.offset());
            }
        }
        throw new LoadException(LoadException.Kind.BAD_FILE, "no loadable segment holds file offset "
            + Elf.hex(fileOffset));
    }

    /** How many FDEs it has. */
    public int size() {
        return fdes.length;
    }

    /** Whether an FDE covers {@code pc}. */
    public boolean covers(long pc) {
        return find(pc) >= 0;
    }

    /**
     * Unwinds the frame executing at {@code pc} with registers {@code regs} (DWARF numbering, {@link #REGISTERS} of
     * them): its CFA, and its caller's registers. {@code pc} is looked up as given: a caller passes a return address
     * minus one (the call, not what follows it, which may be another function), and the pc itself for the innermost
     * frame and a frame a signal interrupted.
     */
    public Step step(long pc, long[] regs, DwarfExpression.Memory m) throws UnwindException {
        Resolved at = resolved.get(pc);
        if (at == null) {
            at = resolve(pc);
            if (resolved.size() > 65_536) {
                resolved.clear();
            }
            resolved.put(pc, at);
        }
        Cie cie = at.cie();
        Rules rules = at.rules();
        DwarfExpression.Registers frame = r -> register(regs, r);
        long cfa = rules.cfaExpression != null
            ? DwarfExpression.evaluate(rules.cfaExpression, frame, m, null)
            : register(regs, rules.cfaRegister) + rules.cfaOffset;
        if (rules.kind[cie.raColumn] == UNDEFINED) {
            return new Step(null, cie.signalFrame, cfa);
        }
        long[] caller = regs.clone();
        caller[RSP] = cfa;
        for (int r = 0; r < REGISTERS; r++) {
            int column = r == RA ? cie.raColumn : r;
            caller[r] = switch (rules.kind[column]) {
                case UNDEFINED -> 0;
                case OFFSET -> m.read(cfa + rules.value[column]);
                case VAL_OFFSET -> cfa + rules.value[column];
                case REGISTER -> register(regs, (int) rules.value[column]);
                case EXPRESSION -> m.read(DwarfExpression.evaluate(rules.expression[column], frame, m, cfa));
                case VAL_EXPRESSION -> DwarfExpression.evaluate(rules.expression[column], frame, m, cfa);
                default -> r == RSP ? cfa : regs[r];
            };
        }
        return new Step(caller, cie.signalFrame, cfa);
    }

    /** The rules at {@code pc}: its FDE's CIE's instructions, then its own up to {@code pc}. */
    private Resolved resolve(long pc) throws UnwindException {
        int i = find(pc);
        if (i < 0) {
            throw new UnwindException("no call frame information covers " + Elf.hex(pc));
        }
        int fde = fdes[i];
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        int cieAt = fde + 4 - b.getInt(fde + 4);
        Cie cie = cies.get(cieAt);
        try {
            if (cie == null) {
                cie = cie(data, address, cieAt);
                cies.put(cieAt, cie);
            }
            Rules initial = run(b, cie, cie.start, cie.end, null, Long.MAX_VALUE, 0, new Rules());
            b.position(fde + 8);
            long begin = pointer(b, cie.encoding, address);
            pointer(b, cie.encoding & 0x0f, address);
            if (cie.augmented) {
                long skip = Leb.uleb(b);
                b.position((int) (b.position() + skip));
            }
            int end = fde + 4 + b.getInt(fde);
            return new Resolved(cie, run(b, cie, b.position(), end, initial, pc, begin, initial.clone()));
        } catch (BufferUnderflowException | IndexOutOfBoundsException | LoadException e) {
            throw new UnwindException("the FDE at " + Elf.hex(address + fde) + " cannot be read"
                + (e instanceof LoadException ? ": " + e.getMessage() : ""));
        }
    }

    private static long register(long[] regs, int r) throws UnwindException {
        if (r < 0 || r >= REGISTERS) {
            throw new UnwindException("call frame information uses DWARF register " + r + ", which hpvm does not "
                + "track");
        }
        return regs[r];
    }

    private int find(long pc) {
        int lo = 0;
        int hi = starts.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(starts[mid], pc) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return hi >= 0 && Long.compareUnsigned(pc, ends[hi]) < 0 ? hi : -1;
    }

    /** Runs the instructions in {@code [from, to)} while the location is at most {@code pc}. */
    private Rules run(ByteBuffer b, Cie cie, int from, int to, Rules initial, long pc, long location, Rules r)
        throws LoadException {
        List<Rules> remembered = new ArrayList<>();
        long loc = location;
        b.position(from);
        while (b.position() < to) {
            int op = b.get() & 0xff;
            int high = op & 0xc0;
            int low = op & 0x3f;
            long advance = -1;
            if (high == 0x40) {
                advance = low * cie.codeAlign;
            } else if (high == 0x80) {
                set(r, low, OFFSET, Leb.uleb(b) * cie.dataAlign);
            } else if (high == 0xc0) {
                restore(r, initial, low);
            } else {
                switch (op) {
                    case 0x00, 0x2e -> {
                        if (op == 0x2e) {
                            Leb.uleb(b); // DW_CFA_GNU_args_size
                        }
                    }
                    case 0x01 -> {
                        long to2 = pointer(b, cie.encoding, address);
                        if (Long.compareUnsigned(to2, pc) > 0) {
                            return r;
                        }
                        loc = to2;
                    }
                    case 0x02 -> advance = (b.get() & 0xffL) * cie.codeAlign;
                    case 0x03 -> advance = (b.getShort() & 0xffffL) * cie.codeAlign;
                    case 0x04 -> advance = Integer.toUnsignedLong(b.getInt()) * cie.codeAlign;
                    case 0x05 -> set(r, (int) Leb.uleb(b), OFFSET, Leb.uleb(b) * cie.dataAlign);
                    case 0x06 -> restore(r, initial, (int) Leb.uleb(b));
                    case 0x07 -> set(r, (int) Leb.uleb(b), UNDEFINED, 0);
                    case 0x08 -> set(r, (int) Leb.uleb(b), SAME, 0);
                    case 0x09 -> set(r, (int) Leb.uleb(b), REGISTER, Leb.uleb(b));
                    case 0x0a -> remembered.add(r.clone());
                    case 0x0b -> {
                        if (remembered.isEmpty()) {
                            throw bad(address + b.position(), "restores a state it never remembered");
                        }
                        // the whole row, the CFA rule included, as gcc means it when it brackets an early
                        // return's epilogue with remember/restore (libgcc, gdb and libunwind read it so)
                        r = remembered.remove(remembered.size() - 1);
                    }
                    case 0x0c -> {
                        r.cfaRegister = (int) Leb.uleb(b);
                        r.cfaOffset = Leb.uleb(b);
                        r.cfaExpression = null;
                    }
                    case 0x0d -> {
                        r.cfaRegister = (int) Leb.uleb(b);
                        r.cfaExpression = null;
                    }
                    case 0x0e -> r.cfaOffset = Leb.uleb(b);
                    case 0x0f -> r.cfaExpression = block(b);
                    case 0x10, 0x16 -> {
                        int reg = (int) Leb.uleb(b);
                        byte[] e = block(b);
                        if (reg >= 0 && reg < REGISTERS) {
                            r.kind[reg] = op == 0x10 ? EXPRESSION : VAL_EXPRESSION;
                            r.expression[reg] = e;
                        }
                    }
                    case 0x11 -> set(r, (int) Leb.uleb(b), OFFSET, Leb.sleb(b) * cie.dataAlign);
                    case 0x12 -> {
                        r.cfaRegister = (int) Leb.uleb(b);
                        r.cfaOffset = Leb.sleb(b) * cie.dataAlign;
                        r.cfaExpression = null;
                    }
                    case 0x13 -> r.cfaOffset = Leb.sleb(b) * cie.dataAlign;
                    case 0x14 -> set(r, (int) Leb.uleb(b), VAL_OFFSET, Leb.uleb(b) * cie.dataAlign);
                    case 0x15 -> set(r, (int) Leb.uleb(b), VAL_OFFSET, Leb.sleb(b) * cie.dataAlign);
                    case 0x2f -> set(r, (int) Leb.uleb(b), OFFSET, -Leb.uleb(b) * cie.dataAlign);
                    default -> throw bad(address + b.position() - 1, "uses call frame instruction " + Elf.hex(op)
                        + ", which hpvm does not know");
                }
            }
            if (advance >= 0) {
                if (Long.compareUnsigned(loc + advance, pc) > 0) {
                    return r;
                }
                loc += advance;
            }
        }
        return r;
    }

    private static void set(Rules r, int reg, int kind, long value) {
        if (reg >= 0 && reg < REGISTERS) { // rules for vector and flag registers say nothing about the stack
            r.kind[reg] = kind;
            r.value[reg] = value;
        }
    }

    private static void restore(Rules r, Rules initial, int reg) {
        if (reg >= 0 && reg < REGISTERS) {
            r.kind[reg] = initial == null ? SAME : initial.kind[reg];
            r.value[reg] = initial == null ? 0 : initial.value[reg];
            r.expression[reg] = initial == null ? null : initial.expression[reg];
        }
    }

    private static byte[] block(ByteBuffer b) {
        byte[] e = new byte[(int) Leb.uleb(b)];
        b.get(e);
        return e;
    }

    private static Cie cie(byte[] data, long address, int at) throws LoadException {
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        try {
            long length = Integer.toUnsignedLong(b.getInt(at));
            if (at < 0 || length < 8 || at + 4 + length > data.length || b.getInt(at + 4) != 0) {
                throw bad(address + at, "is not a CIE an FDE can point to");
            }
            int end = (int) (at + 4 + length);
            b.position(at + 8);
            int version = b.get() & 0xff;
            StringBuilder aug = new StringBuilder();
            for (int c = b.get(); c != 0; c = b.get()) {
                aug.append((char) c);
            }
            if (aug.indexOf("eh") >= 0) {
                b.getLong();
            }
            long codeAlign = Leb.uleb(b);
            long dataAlign = Leb.sleb(b);
            int ra = version == 1 ? b.get() & 0xff : (int) Leb.uleb(b);
            int encoding = 0;
            boolean signal = false;
            boolean augmented = aug.length() > 0 && aug.charAt(0) == 'z';
            if (augmented) {
                long augLength = Leb.uleb(b);
                int augEnd = (int) (b.position() + augLength);
                for (int i = 1; i < aug.length(); i++) {
                    switch (aug.charAt(i)) {
                        case 'R' -> encoding = b.get() & 0xff;
                        case 'L' -> b.get();
                        case 'P' -> pointer(b, b.get() & 0xff, address);
                        case 'S' -> signal = true;
                        default -> {
                        }
                    }
                }
                b.position(augEnd);
            } else if (aug.length() > 0) {
                throw bad(address + at, "has augmentation \"" + aug + "\", which hpvm does not know");
            }
            if (ra >= REGISTERS) {
                throw bad(address + at, "keeps the return address in DWARF register " + ra);
            }
            return new Cie(encoding, signal, codeAlign, dataAlign, ra, b.position(), end, augmented);
        } catch (BufferUnderflowException | IndexOutOfBoundsException e) {
            throw bad(address + at, "is cut short");
        }
    }

    /** A pointer in encoding {@code enc} (DW_EH_PE_*) at {@code b}'s position, the records being at {@code base}. */
    private static long pointer(ByteBuffer b, int enc, long base) throws LoadException {
        if (enc == 0xff) {
            return 0;
        }
        long field = base + b.position();
        long v = switch (enc & 0x0f) {
            case 0x00, 0x04, 0x0c -> b.getLong();
            case 0x01 -> Leb.uleb(b);
            case 0x02 -> b.getShort() & 0xffffL;
            case 0x03 -> Integer.toUnsignedLong(b.getInt());
            case 0x09 -> Leb.sleb(b);
            case 0x0a -> b.getShort();
            case 0x0b -> b.getInt();
            default -> throw bad(field, "uses pointer encoding " + Elf.hex(enc) + ", which hpvm does not know");
        };
        return switch (enc & 0x70) {
            case 0x00 -> v;
            case 0x10 -> v + field;
            default -> throw bad(field, "uses pointer encoding " + Elf.hex(enc) + ", which hpvm does not know");
        };
    }

    private static LoadException bad(long at, String what) {
        return new LoadException(LoadException.Kind.BAD_FILE, "the .eh_frame record at " + Elf.hex(at) + " " + what);
    }

    @Override
    public String toString() {
        return "CallFrameInfo[" + fdes.length + " FDEs at " + Elf.hex(address) + ", "
            + (starts.length == 0 ? "none" : Elf.hex(starts[0]) + ".." + Elf.hex(ends[ends.length - 1])) + "]";
    }

    /** For tests: every FDE's {@code [start, end)}. */
    long[][] ranges() {
        long[][] out = new long[starts.length][];
        for (int i = 0; i < starts.length; i++) {
            out[i] = new long[] {starts[i], ends[i]};
        }
        return out;
    }
}
