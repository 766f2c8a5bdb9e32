package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The part of an object's {@code .eh_frame} that describes the code a patch places: every FDE whose {@code pc_begin}
 * lies in an included section, and the CIEs they use, copied in their original order with each FDE's CIE pointer
 * recomputed, followed by a zero terminator. That is the format {@code __register_frame_info} expects, so C++
 * exceptions (and {@code backtrace()}, {@code pthread_cancel}) can unwind through the patched code. The records keep
 * their relocations (pc_begin, LSDA and personality pointers), renumbered to the new offsets.
 *
 * <p>References: the LSB's "Exception Frames" chapter (CIE/FDE layout) and libgcc's unwind-dw2-fde.c.
 */
final class UnwindInfo {

    /** {@code SHT_X86_64_UNWIND}: the type binutils gives {@code .eh_frame} on x86-64. */
    static final int SHT_X86_64_UNWIND = 0x70000001;

    private final Section section;
    private final List<Relocation> relocations;

    private UnwindInfo(Section section, List<Relocation> relocations) {
        this.section = section;
        this.relocations = relocations;
    }

    /** The synthetic section holding the selected records (its index is past the object's own sections). */
    Section section() {
        return section;
    }

    List<Relocation> relocations() {
        return relocations;
    }

    /**
     * Selects the records of {@code obj}'s {@code .eh_frame} that describe code in the {@code included} sections, or
     * returns null when there are none (no {@code .eh_frame}, {@code -fno-asynchronous-unwind-tables}, or none of the
     * included code has an FDE).
     */
    static UnwindInfo select(RelocatableObject obj, Set<Integer> included, int index) throws LoadException {
        Section eh = null;
        for (Section s : obj.sections()) {
            if (s.name().equals(".eh_frame") && (s.type() == Elf.SHT_PROGBITS || s.type() == SHT_X86_64_UNWIND)) {
                eh = s;
            }
        }
        if (eh == null) {
            return null;
        }
        byte[] d = eh.data();
        ByteBuffer b = ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN);
        java.util.TreeMap<Long, Relocation> relocAt = new java.util.TreeMap<>();
        for (Relocation r : obj.relocations(eh.index())) {
            relocAt.put(r.offset(), r);
        }
        // Pass 1: which records to keep.
        List<int[]> records = new ArrayList<>(); // {offset, end, cieOffset or -1 for a CIE}
        Set<Integer> neededCies = new java.util.HashSet<>();
        Set<Integer> kept = new java.util.HashSet<>(); // FDE offsets
        Map<Integer, Integer> pointerWidth = new java.util.HashMap<>(); // CIE offset -> bytes of its FDEs' pointers
        int o = 0;
        while (o + 4 <= d.length) {
            long length = Integer.toUnsignedLong(b.getInt(o));
            if (length == 0) {
                break;
            }
            if (length == 0xffffffffL || o + 4 + length > d.length || length < 4) {
                throw new LoadException(LoadException.Kind.BAD_FILE, obj.path() + ": .eh_frame record at "
                    + Elf.hex(o) + " has a length hpvm cannot read (" + Elf.hex(length) + ")");
            }
            int end = (int) (o + 4 + length);
            int id = b.getInt(o + 4);
            int[] rec = {o, end, id == 0 ? -1 : o + 4 - id};
            records.add(rec);
            if (id != 0) {
                Relocation pcBegin = relocAt.get((long) o + 8);
                Symbol target = pcBegin == null ? null : obj.symbols().get(pcBegin.symbolIndex());
                if (target != null && target.isDefined() && included.contains(target.sectionIndex())) {
                    Integer width = pointerWidth.get(rec[2]);
                    if (width == null) {
                        throw new LoadException(LoadException.Kind.BAD_FILE, obj.path() + ": the FDE at .eh_frame+"
                            + Elf.hex(o) + " points at .eh_frame+" + Elf.hex(rec[2]) + ", which is not a CIE before "
                            + "it");
                    }
                    checkRange(obj, d, o, end, width, pcBegin, target);
                    kept.add(rec[0]);
                    neededCies.add(rec[2]);
                }
            } else {
                pointerWidth.put(o, fdePointerWidth(obj, d, o, end));
            }
            o = end;
        }
        if (kept.isEmpty()) {
            return null;
        }
        // Pass 2: copy CIEs in use and kept FDEs in order; remember where each went.
        Map<Integer, Integer> newOffset = new LinkedHashMap<>();
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int[] rec : records) {
            boolean keep = rec[2] == -1 ? neededCies.contains(rec[0]) : kept.contains(rec[0]);
            if (keep) {
                newOffset.put(rec[0], out.size());
                out.write(d, rec[0], rec[1] - rec[0]);
            }
        }
        out.write(new byte[4], 0, 4); // terminator
        byte[] copy = out.toByteArray();
        ByteBuffer c = ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN);
        List<Relocation> relocs = new ArrayList<>();
        for (int[] rec : records) {
            Integer at = newOffset.get(rec[0]);
            if (at == null) {
                continue;
            }
            if (rec[2] != -1) {
                Integer cie = newOffset.get(rec[2]);
                if (cie == null) {
                    throw new LoadException(LoadException.Kind.BAD_FILE, obj.path() + ": the FDE at .eh_frame+"
                        + Elf.hex(rec[0]) + " points at no CIE");
                }
                c.putInt(at + 4, at + 4 - cie);
            }
            for (Relocation r : relocAt.subMap((long) rec[0], (long) rec[1]).values()) {
                relocs.add(new Relocation(r.offset() - rec[0] + at, r.type(), r.symbolIndex(), r.addend()));
            }
        }
        Section s = new Section(index, ".eh_frame", eh.type(), Elf.SHF_ALLOC, 0, 0, copy.length, 8, 0, 0, copy);
        return new UnwindInfo(s, relocs);
    }

    /**
     * The size of the address fields of the FDEs that use the CIE at {@code o} (its 'R' augmentation, DW_EH_PE_*
     * value format), after reading the CIE's header as the unwinder will. Refuses what the unwinder could misread.
     */
    private static int fdePointerWidth(RelocatableObject obj, byte[] d, int o, int end) throws LoadException {
        String where = obj.path() + ": the CIE at .eh_frame+" + Elf.hex(o);
        int p = o + 8;
        int version = p < end ? d[p++] & 0xff : -1;
        if (version != 1 && version != 3) {
            throw new LoadException(LoadException.Kind.BAD_FILE, where + " has version " + version + " (1 or 3 "
                + "expected)");
        }
        int augStart = p;
        while (p < end && d[p] != 0) {
            p++;
        }
        if (p >= end) {
            throw new LoadException(LoadException.Kind.BAD_FILE, where + " has an unterminated augmentation string");
        }
        String aug = new String(d, augStart, p - augStart, java.nio.charset.StandardCharsets.ISO_8859_1);
        p++;
        int[] cursor = {p};
        leb(d, cursor, end, where); // code alignment
        leb(d, cursor, end, where); // data alignment
        if (version == 1) {
            cursor[0]++;
        } else {
            leb(d, cursor, end, where); // return address register
        }
        int encoding = 0; // DW_EH_PE_absptr
        if (aug.startsWith("z")) {
            leb(d, cursor, end, where); // augmentation data length
            for (int i = 1; i < aug.length(); i++) {
                char c = aug.charAt(i);
                if (cursor[0] >= end) {
                    break;
                }
                switch (c) {
                    case 'R' -> encoding = d[cursor[0]++] & 0xff;
                    case 'L' -> cursor[0]++;
                    case 'P' -> {
                        int personality = d[cursor[0]++] & 0xff;
                        cursor[0] += valueWidth(personality & 0x0f, where);
                    }
                    case 'S', 'B' -> {
                        // signal frame, no data; 'B': AArch64 only, never here
                    }
                    default -> throw new LoadException(LoadException.Kind.BAD_FILE, where + " has augmentation '"
                        + aug + "', which hpvm cannot read");
                }
            }
        } else if (!aug.isEmpty()) {
            throw new LoadException(LoadException.Kind.BAD_FILE, where + " has augmentation '" + aug + "', which "
                + "hpvm cannot read");
        }
        if (cursor[0] > end) {
            throw new LoadException(LoadException.Kind.BAD_FILE, where + " runs past its own length");
        }
        return valueWidth(encoding & 0x0f, where);
    }

    /** Bytes of a DW_EH_PE value format (absptr, udata2/4/8, sdata2/4/8). */
    private static int valueWidth(int format, String where) throws LoadException {
        return switch (format) {
            case 0x00, 0x04, 0x0c -> 8;
            case 0x03, 0x0b -> 4;
            case 0x02, 0x0a -> 2;
            default -> throw new LoadException(LoadException.Kind.BAD_FILE, where + " uses pointer encoding "
                + Elf.hex(format) + ", which hpvm cannot read");
        };
    }

    private static void leb(byte[] d, int[] cursor, int end, String where) throws LoadException {
        for (int i = 0; i < 10; i++) {
            if (cursor[0] >= end) {
                break;
            }
            if ((d[cursor[0]++] & 0x80) == 0) {
                return;
            }
        }
        throw new LoadException(LoadException.Kind.BAD_FILE, where + " has a malformed LEB128 number");
    }

    /**
     * An FDE describes {@code [pc_begin, pc_begin + pc_range)}; that range must lie inside the section its pc_begin
     * points into, or the worker's unwinder would take this FDE for code that is not the patch's.
     */
    private static void checkRange(RelocatableObject obj, byte[] d, int o, int end, int width, Relocation pcBegin,
                                   Symbol target) throws LoadException {
        int at = o + 8 + width;
        if (at + width > end) {
            throw new LoadException(LoadException.Kind.BAD_FILE, obj.path() + ": the FDE at .eh_frame+" + Elf.hex(o)
                + " is too short for its address range");
        }
        ByteBuffer b = ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN);
        long range = switch (width) {
            case 2 -> Short.toUnsignedLong(b.getShort(at));
            case 4 -> Integer.toUnsignedLong(b.getInt(at));
            default -> b.getLong(at);
        };
        long start = target.value() + pcBegin.addend();
        long size = obj.section(target.sectionIndex()).size();
        if (start < 0 || start > size || Long.compareUnsigned(range, size - start) > 0) {
            throw new LoadException(LoadException.Kind.BAD_FILE, obj.path() + ": the FDE at .eh_frame+" + Elf.hex(o)
                + " describes " + Long.toUnsignedString(range) + " bytes at " + obj.section(target.sectionIndex())
                .name() + "+" + Elf.hex(start) + ", beyond the end of that section (" + Elf.hex(size) + " bytes)");
        }
    }
}
