package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Where the compiler inlined functions, from an executable's DWARF ({@code .debug_info}, versions 2 to 5): each
 * {@code DW_TAG_inlined_subroutine} names, through {@code DW_AT_abstract_origin}, the function whose body was copied,
 * and sits inside the function it was copied into. A swap replaces a function's own body only, so those copies keep
 * running the old code; hpvm warns about them.
 *
 * <p>Only what that question needs is read: the abbreviation tables, each DIE's tag, name, linkage name, abstract
 * origin and specification, and the nesting; every other attribute is skipped by its form.
 */
public final class DwarfInlines {

    private static final int TAG_SUBPROGRAM = 0x2e;
    private static final int TAG_INLINED_SUBROUTINE = 0x1d;
    private static final int AT_NAME = 0x03;
    private static final int AT_ABSTRACT_ORIGIN = 0x31;
    private static final int AT_SPECIFICATION = 0x47;
    private static final int AT_LINKAGE_NAME = 0x6e;
    private static final int AT_MIPS_LINKAGE_NAME = 0x2007;
    private static final int AT_STR_OFFSETS_BASE = 0x72;

    private final ByteBuffer info;
    private final byte[] str;
    private final byte[] lineStr;
    private final ByteBuffer strOffsets;
    /** The current unit's DW_AT_str_offsets_base (clang's DWARF 5 names are indexes into .debug_str_offsets). */
    private long strOffsetsBase;
    private final ByteBuffer abbrev;
    /** DIE offset -> name (linkage name preferred). */
    private final Map<Long, String> names = new HashMap<>();
    /** DIE offset -> the DIE it refers to for its name (abstract origin or specification). */
    private final Map<Long, Long> nameFrom = new HashMap<>();
    /** {abstract origin, enclosing subprogram DIE} of every inlined copy. */
    private final List<long[]> inlined = new ArrayList<>();

    private DwarfInlines(ElfImage image) {
        this.info = ByteBuffer.wrap(data(image, ".debug_info")).order(ByteOrder.LITTLE_ENDIAN);
        this.abbrev = ByteBuffer.wrap(data(image, ".debug_abbrev")).order(ByteOrder.LITTLE_ENDIAN);
        this.str = data(image, ".debug_str");
        this.lineStr = data(image, ".debug_line_str");
        this.strOffsets = ByteBuffer.wrap(data(image, ".debug_str_offsets")).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] data(ElfImage image, String name) {
        Section s = image.section(name);
        return s == null ? new byte[0] : s.data();
    }

    /** True when the executable has DWARF debug information to ask. */
    public static boolean available(ElfImage image) {
        Section s = image.section(".debug_info");
        return s != null && s.data().length > 0;
    }

    /**
     * For each of {@code functions} (names as in the symbol table: C names or C++ linkage names) that the compiler
     * inlined somewhere, the names of the functions holding a copy, sorted. Empty when there is no debug information.
     *
     * @throws LoadException BAD_FILE when the debug information cannot be read
     */
    public static Map<String, Set<String>> inlinedInto(ElfImage image, Set<String> functions) throws LoadException {
        Map<String, Set<String>> out = new TreeMap<>();
        if (!available(image) || functions.isEmpty()) {
            return out;
        }
        DwarfInlines d = new DwarfInlines(image);
        try {
            d.read();
        } catch (RuntimeException e) {
            throw new LoadException(LoadException.Kind.BAD_FILE, image.path() + ": cannot read .debug_info ("
                + e + ")");
        }
        for (long[] copy : d.inlined) {
            String name = d.nameOf(copy[0], 0);
            if (name != null && functions.contains(name)) {
                String into = copy[1] < 0 ? null : d.nameOf(copy[1], 0);
                out.computeIfAbsent(name, k -> new TreeSet<>()).add(into == null ? "?" : into);
            }
        }
        return out;
    }

    private String nameOf(long die, int depth) {
        String n = names.get(die);
        if (n != null || depth > 8) {
            return n;
        }
        Long from = nameFrom.get(die);
        return from == null ? null : nameOf(from, depth + 1);
    }

    private void read() {
        while (info.remaining() > 11) {
            long unitStart = info.position();
            long length = Integer.toUnsignedLong(info.getInt());
            int offsetSize = 4;
            if (length == 0xffffffffL) {
                length = info.getLong();
                offsetSize = 8;
            }
            long unitEnd = info.position() + length;
            int version = Short.toUnsignedInt(info.getShort());
            long abbrevOffset;
            int addressSize;
            if (version >= 5) {
                int unitType = Byte.toUnsignedInt(info.get());
                addressSize = Byte.toUnsignedInt(info.get());
                abbrevOffset = offsetSize == 8 ? info.getLong() : Integer.toUnsignedLong(info.getInt());
                if (unitType == 4 || unitType == 5) { // skeleton, split compile: a dwo id
                    info.getLong();
                } else if (unitType == 2 || unitType == 6) { // type units: signature and type offset
                    info.getLong();
                    info.position(info.position() + offsetSize);
                }
            } else {
                abbrevOffset = offsetSize == 8 ? info.getLong() : Integer.toUnsignedLong(info.getInt());
                addressSize = Byte.toUnsignedInt(info.get());
            }
            readUnit(unitStart, unitEnd, abbrevs(abbrevOffset), offsetSize, addressSize, version);
            info.position((int) unitEnd);
        }
    }

    private record Abbrev(int tag, boolean children, int[] attrs, int[] forms, long[] consts) {
    }

    private Map<Long, Abbrev> abbrevs(long offset) {
        Map<Long, Abbrev> out = new HashMap<>();
        abbrev.position((int) offset);
        while (true) {
            long code = Leb.uleb(abbrev);
            if (code == 0) {
                return out;
            }
            int tag = (int) Leb.uleb(abbrev);
            boolean children = abbrev.get() != 0;
            List<long[]> specs = new ArrayList<>();
            while (true) {
                int attr = (int) Leb.uleb(abbrev);
                int form = (int) Leb.uleb(abbrev);
                long c = form == 0x21 ? Leb.sleb(abbrev) : 0;
                if (attr == 0 && form == 0) {
                    break;
                }
                specs.add(new long[] {attr, form, c});
            }
            int[] attrs = new int[specs.size()];
            int[] forms = new int[specs.size()];
            long[] consts = new long[specs.size()];
            for (int i = 0; i < attrs.length; i++) {
                attrs[i] = (int) specs.get(i)[0];
                forms[i] = (int) specs.get(i)[1];
                consts[i] = specs.get(i)[2];
            }
            out.put(code, new Abbrev(tag, children, attrs, forms, consts));
        }
    }

    private void readUnit(long unitStart, long unitEnd, Map<Long, Abbrev> abbrevs, int offsetSize, int addressSize,
                          int version) {
        // The stack of open DIEs with children, to know the subprogram an inlined copy sits in.
        List<long[]> open = new ArrayList<>(); // {die offset, tag}
        strOffsetsBase = offsetSize == 8 ? 16 : 8; // after the .debug_str_offsets header, until the unit says
        while (info.position() < unitEnd) {
            long die = info.position();
            long code = Leb.uleb(info);
            if (code == 0) {
                if (!open.isEmpty()) {
                    open.remove(open.size() - 1);
                }
                continue;
            }
            Abbrev a = abbrevs.get(code);
            if (a == null) {
                throw new IllegalStateException("unknown abbreviation " + code + " at .debug_info+0x"
                    + Long.toHexString(die));
            }
            String name = null;
            String linkage = null;
            long origin = -1;
            for (int i = 0; i < a.attrs.length; i++) {
                int attr = a.attrs[i];
                int form = a.forms[i];
                boolean wanted = a.tag == TAG_SUBPROGRAM || a.tag == TAG_INLINED_SUBROUTINE;
                if (wanted && (attr == AT_NAME || attr == AT_LINKAGE_NAME || attr == AT_MIPS_LINKAGE_NAME)) {
                    String s = string(form, offsetSize);
                    if (attr == AT_NAME) {
                        name = s;
                    } else {
                        linkage = s;
                    }
                } else if (attr == AT_STR_OFFSETS_BASE && form == 0x17) {
                    strOffsetsBase = offsetSize == 8 ? info.getLong() : Integer.toUnsignedLong(info.getInt());
                } else if (wanted && (attr == AT_ABSTRACT_ORIGIN || attr == AT_SPECIFICATION)) {
                    long ref = reference(form, offsetSize, addressSize, version);
                    origin = form == 0x10 ? ref : unitStart + ref;
                } else {
                    skip(form, offsetSize, addressSize, version);
                }
            }
            if (a.tag == TAG_SUBPROGRAM) {
                if (linkage != null || name != null) {
                    names.put(die, linkage != null ? linkage : name);
                }
                if (origin >= 0) {
                    nameFrom.put(die, origin);
                }
            } else if (a.tag == TAG_INLINED_SUBROUTINE && origin >= 0) {
                long into = -1;
                for (int k = open.size() - 1; k >= 0; k--) {
                    if (open.get(k)[1] == TAG_SUBPROGRAM) {
                        into = open.get(k)[0];
                        break;
                    }
                }
                inlined.add(new long[] {origin, into});
            }
            if (a.children) {
                open.add(new long[] {die, a.tag});
            }
        }
    }

    private String string(int form, int offsetSize) {
        switch (form) {
            case 0x08 -> {
                int start = info.position();
                while (info.get() != 0) {
                    // to the NUL
                }
                return new String(info.array(), start, info.position() - start - 1, StandardCharsets.UTF_8);
            }
            case 0x0e, 0x1f -> {
                long off = offsetSize == 8 ? info.getLong() : Integer.toUnsignedLong(info.getInt());
                return cString(form == 0x0e ? str : lineStr, off);
            }
            case 0x1a, 0x25, 0x26, 0x27, 0x28 -> {
                long index = switch (form) {
                    case 0x25 -> Byte.toUnsignedLong(info.get());
                    case 0x26 -> Short.toUnsignedLong(info.getShort());
                    case 0x27 -> Byte.toUnsignedLong(info.get()) | Short.toUnsignedLong(info.getShort()) << 8;
                    case 0x28 -> Integer.toUnsignedLong(info.getInt());
                    default -> Leb.uleb(info);
                };
                long at = strOffsetsBase + index * offsetSize;
                if (at + offsetSize > strOffsets.limit()) {
                    return null;
                }
                return cString(str, offsetSize == 8 ? strOffsets.getLong((int) at)
                    : Integer.toUnsignedLong(strOffsets.getInt((int) at)));
            }
            default -> {
                skip(form, offsetSize, 8, 5);
                return null; // the GNU split-DWARF index forms: not resolved
            }
        }
    }

    private static String cString(byte[] table, long off) {
        int end = (int) off;
        while (end < table.length && table[end] != 0) {
            end++;
        }
        return off >= table.length ? null : new String(table, (int) off, end - (int) off, StandardCharsets.UTF_8);
    }

    private long reference(int form, int offsetSize, int addressSize, int version) {
        return switch (form) {
            case 0x11 -> Byte.toUnsignedLong(info.get());
            case 0x12 -> Short.toUnsignedLong(info.getShort());
            case 0x13 -> Integer.toUnsignedLong(info.getInt());
            case 0x14 -> info.getLong();
            case 0x15 -> Leb.uleb(info);
            case 0x10 -> version <= 2 ? (addressSize == 8 ? info.getLong() : Integer.toUnsignedLong(info.getInt()))
                : offsetSize == 8 ? info.getLong() : Integer.toUnsignedLong(info.getInt());
            default -> {
                skip(form, offsetSize, addressSize, version);
                yield -1L << 40; // another file's DIE (supplementary objects): never matches
            }
        };
    }

    private void skip(int form, int offsetSize, int addressSize, int version) {
        int p = info.position();
        switch (form) {
            case 0x01 -> info.position(p + addressSize);
            case 0x03 -> info.position(p + 2 + Short.toUnsignedInt(info.getShort()));
            case 0x04 -> info.position(p + 4 + info.getInt());
            case 0x05, 0x12, 0x26, 0x2a -> info.position(p + 2);
            case 0x06, 0x13, 0x1c, 0x28, 0x2c -> info.position(p + 4);
            case 0x07, 0x14, 0x20, 0x24 -> info.position(p + 8);
            case 0x08 -> {
                while (info.get() != 0) {
                    // to the NUL
                }
            }
            case 0x09, 0x18 -> {
                long n = Leb.uleb(info);
                info.position(info.position() + (int) n);
            }
            case 0x0a -> info.position(p + 1 + Byte.toUnsignedInt(info.get()));
            case 0x0b, 0x0c, 0x11, 0x25, 0x29 -> info.position(p + 1);
            case 0x0d -> Leb.sleb(info);
            case 0x0f, 0x15, 0x1a, 0x1b, 0x22, 0x23, 0x1f01, 0x1f02 -> Leb.uleb(info);
            case 0x0e, 0x17, 0x1d, 0x1f, 0x1f20, 0x1f21 -> info.position(p + offsetSize);
            case 0x10 -> info.position(p + (version <= 2 ? addressSize : offsetSize));
            case 0x16 -> skip((int) Leb.uleb(info), offsetSize, addressSize, version);
            case 0x19, 0x21 -> {
                // no data in the DIE
            }
            case 0x1e -> info.position(p + 16);
            case 0x27, 0x2b -> info.position(p + 3);
            default -> throw new IllegalStateException("DWARF form 0x" + Integer.toHexString(form) + " at "
                + ".debug_info+0x" + Integer.toHexString(p));
        }
    }
}
