package io.hpvm.loader;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

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
        Map<RelocatableObject, Map<Integer, Hashes>> hashes = new IdentityHashMap<>();
        for (Symbol f : neu.symbols()) {
            if (!f.isFunction() || !f.isDefined() || f.name().isEmpty() || f.sectionIndex() >= neu.sections().size()) {
                continue;
            }
            Symbol o = old.definedSymbol(f.name());
            if (o == null || !o.isFunction() || o.sectionIndex() >= old.sections().size()) {
                added.add(f.name());
            } else if (!fingerprint(neu, f, hashes).equals(fingerprint(old, o, hashes))) {
                changed.add(f.name());
            }
        }
        return new Result(changed, added);
    }

    /** Code with relocation fields zeroed, plus each relocation's target, as one comparable string. */
    private static String fingerprint(RelocatableObject obj, Symbol fn, Map<RelocatableObject, Map<Integer, Hashes>>
        hashes) {
        Section s = obj.section(fn.sectionIndex());
        long start = Math.min(fn.value(), s.data().length);
        long end = Math.min(fn.value() + Math.max(fn.size(), 0), s.data().length);
        byte[] code = Arrays.copyOfRange(s.data(), (int) start, (int) end);
        StringBuilder relocs = new StringBuilder();
        for (Relocation r : obj.relocations(s.index(), start, end)) {
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
                    relocs.append('=').append(hashes(hashes, obj, target).referenced(r));
                } else {
                    relocs.append('+').append(r.addend());
                }
            } else if (t.isLocal() && t.isDefined() && t.sectionIndex() > 0 && t.sectionIndex() < obj.sections().size()
                && !obj.section(t.sectionIndex()).isExecutable() && !obj.section(t.sectionIndex()).isWritableData()) {
                // A label in read-only data (.LC0, kept by the assembler with -g or -fdata-sections): what counts
                // is the string or constant there, not the label's number.
                Section target = obj.section(t.sectionIndex());
                relocs.append(target.name().replaceAll("\\.\\d+$", "")).append('+').append(r.addend()).append('=')
                    .append(hashes(hashes, obj, target).labelled(obj, t.value()));
            } else {
                relocs.append(t.name()).append('+').append(r.addend());
            }
            relocs.append(';');
        }
        return Arrays.toString(code) + "|" + relocs;
    }

    private static Hashes hashes(Map<RelocatableObject, Map<Integer, Hashes>> all, RelocatableObject obj,
                                 Section target) {
        return all.computeIfAbsent(obj, k -> new HashMap<>()).computeIfAbsent(target.index(), k -> new Hashes(target));
    }

    /**
     * The bytes of a read-only section, hashed so that any range's hash costs O(1) (polynomial prefix hashes), and
     * the next NUL after every offset: each reference's bytes (a string, a labelled item, the rest of the section)
     * is compared in constant time, where copying them made a comparison quadratic in the section's size.
     */
    private static final class Hashes {
        private static final long BASE = 0x100000001b3L;
        private final Section section;
        private final long[] prefix;
        private final long[] power;
        private final int[] nextNul;

        Hashes(Section s) {
            this.section = s;
            byte[] d = s.data();
            prefix = new long[d.length + 1];
            power = new long[d.length + 1];
            nextNul = new int[d.length + 1];
            power[0] = 1;
            for (int i = 0; i < d.length; i++) {
                prefix[i + 1] = prefix[i] * BASE + (d[i] & 0xff) + 1;
                power[i + 1] = power[i] * BASE;
            }
            nextNul[d.length] = d.length;
            for (int i = d.length - 1; i >= 0; i--) {
                nextNul[i] = d[i] == 0 ? i : nextNul[i + 1];
            }
        }

        /** Hash and length of the bytes {@code [from, to)}. */
        String of(int from, int to) {
            return Long.toHexString(prefix[to] - prefix[from] * power[to - from]) + "/" + (to - from);
        }

        /** The read-only bytes a relocation points at: a string up to its NUL, or the rest of the section. */
        String referenced(Relocation r) {
            int n = section.data().length;
            EdgeKind kind = EdgeKind.of(r.type());
            long at = r.addend() + (kind != null && kind.isPcRelative() ? 4 : 0);
            int from = (int) Math.max(0, Math.min(n, at));
            int to = section.name().startsWith(".rodata.str") ? nextNul[from] : n;
            return of(from, to);
        }

        /** The item at label offset {@code from}: up to the next label or symbol of the section, or its end. */
        String labelled(RelocatableObject obj, long from) {
            int n = section.data().length;
            long next = obj.nextSymbolAfter(section.index(), from);
            int to = (int) (next < 0 || next > n ? n : next);
            return of((int) Math.max(0, Math.min(from, to)), to);
        }
    }
}
