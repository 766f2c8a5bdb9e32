package io.hpvm.loader;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Which functions differ between two compilations of a source file (both with {@code -ffunction-sections}, so
 * each function has its own section). Two functions are the same when their code is the same byte for byte outside
 * relocation fields, their relocations name the same targets with the same addends, and the read-only data they
 * refer to by section (string literals, tables) holds the same bytes. Differences in where things end up (the
 * relocated values) do not count.
 */
public final class ObjectDiff {

    /**
     * The result.
     *
     * @param changed functions in both objects whose code differs
     * @param added   functions only in the new object
     */
    public record Result(List<String> changed, List<String> added) {
    }

    private ObjectDiff() {
    }

    public static Result compare(RelocatableObject old, RelocatableObject neu) {
        List<String> changed = new ArrayList<>();
        List<String> added = new ArrayList<>();
        for (Symbol f : neu.symbols()) {
            if (!f.isFunction() || !f.isDefined() || f.name().isEmpty() || f.sectionIndex() >= neu.sections().size()) {
                continue;
            }
            Symbol o = old.definedSymbol(f.name());
            if (o == null || !o.isFunction()) {
                added.add(f.name());
            } else if (!fingerprint(neu, f).equals(fingerprint(old, o))) {
                changed.add(f.name());
            }
        }
        return new Result(changed, added);
    }

    /** Code with relocation fields zeroed, plus each relocation's target, as one comparable string. */
    private static String fingerprint(RelocatableObject obj, Symbol fn) {
        Section s = obj.section(fn.sectionIndex());
        long start = fn.value();
        long end = fn.value() + Math.max(fn.size(), 0);
        byte[] code = Arrays.copyOfRange(s.data(), (int) start, (int) Math.min(end, s.data().length));
        StringBuilder relocs = new StringBuilder();
        for (Relocation r : obj.relocations(s.index())) {
            if (r.offset() < start || r.offset() >= end) {
                continue;
            }
            EdgeKind kind = EdgeKind.of(r.type());
            int width = kind == null ? 4 : kind.width();
            for (int k = 0; k < width && r.offset() - start + k < code.length; k++) {
                code[(int) (r.offset() - start + k)] = 0;
            }
            Symbol t = obj.symbols().get(r.symbolIndex());
            relocs.append(r.offset() - start).append(':').append(r.type()).append(':');
            if (t.type() == Elf.STT_SECTION && t.sectionIndex() < obj.sections().size()) {
                Section target = obj.section(t.sectionIndex());
                relocs.append(target.isExecutable() ? target.name() : target.name().replaceAll("\\.\\d+$", ""));
                if (!target.isExecutable() && !target.isWritableData()) {
                    // Read-only data: the bytes referenced count, not where the assembler put them (an earlier
                    // string that grew moves the rest).
                    relocs.append('=').append(Arrays.hashCode(referenced(target, r)));
                } else {
                    relocs.append('+').append(r.addend());
                }
            } else if (t.isLocal() && t.isDefined() && t.sectionIndex() > 0 && t.sectionIndex() < obj.sections().size()
                && !obj.section(t.sectionIndex()).isExecutable() && !obj.section(t.sectionIndex()).isWritableData()) {
                // A label in read-only data (.LC0, kept by the assembler with -g or -fdata-sections): what counts
                // is the string or constant there, not the label's number.
                Section target = obj.section(t.sectionIndex());
                relocs.append(target.name().replaceAll("\\.\\d+$", "")).append('+').append(r.addend()).append('=')
                    .append(Arrays.hashCode(labelled(obj, target, t.value())));
            } else {
                relocs.append(t.name()).append('+').append(r.addend());
            }
            relocs.append(';');
        }
        return Arrays.toString(code) + "|" + relocs;
    }

    /** The bytes of the item at label offset {@code from}: up to the next label or symbol of the section, or its end. */
    static byte[] labelled(RelocatableObject obj, Section target, long from) {
        long to = target.data().length;
        for (Symbol s : obj.symbols()) {
            if (s.sectionIndex() == target.index() && s.type() != Elf.STT_SECTION && s.value() > from
                && s.value() < to) {
                to = s.value();
            }
        }
        return Arrays.copyOfRange(target.data(), (int) Math.min(from, to), (int) to);
    }

    /** The read-only bytes a relocation points at: a string up to its NUL, or the rest of the section. */
    private static byte[] referenced(Section target, Relocation r) {
        byte[] d = target.data();
        int from = (int) Math.max(0, Math.min(d.length, r.addend() + (EdgeKind.of(r.type()) != null
            && Objects.requireNonNull(EdgeKind.of(r.type())).isPcRelative() ? 4 : 0)));
        int to = d.length;
        if (target.name().startsWith(".rodata.str")) {
            to = from;
            while (to < d.length && d[to] != 0) {
                to++;
            }
        }
        return Arrays.copyOfRange(d, from, to);
    }
}
