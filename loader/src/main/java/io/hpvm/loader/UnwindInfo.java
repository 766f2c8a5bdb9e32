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
        Map<Long, Relocation> relocAt = new LinkedHashMap<>();
        for (Relocation r : obj.relocations(eh.index())) {
            relocAt.put(r.offset(), r);
        }
        // Pass 1: which records to keep.
        List<int[]> records = new ArrayList<>(); // {offset, end, cieOffset or -1 for a CIE}
        Set<Integer> neededCies = new java.util.HashSet<>();
        List<int[]> kept = new ArrayList<>();
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
                    kept.add(rec);
                    neededCies.add(rec[2]);
                }
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
            boolean keep = rec[2] == -1 ? neededCies.contains(rec[0]) : kept.contains(rec);
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
            for (Relocation r : relocAt.values()) {
                if (r.offset() >= rec[0] && r.offset() < rec[1]) {
                    relocs.add(new Relocation(r.offset() - rec[0] + at, r.type(), r.symbolIndex(), r.addend()));
                }
            }
        }
        Section s = new Section(index, ".eh_frame", eh.type(), Elf.SHF_ALLOC, 0, 0, copy.length, 8, 0, 0, copy);
        return new UnwindInfo(s, relocs);
    }
}
