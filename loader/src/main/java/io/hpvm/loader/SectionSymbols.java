package io.hpvm.loader;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The named symbols of each section of an object, indexed so that "which symbols cover any byte of this small
 * window" costs O(log n) per answer: the linker asks it once per reference to local data, and a linear scan per
 * reference made linking quadratic in the object's size. Symbols are sorted by value, with a max-tree over their
 * ends (a symbol covers {@code [value, value + max(size, 1))}).
 */
final class SectionSymbols {

    private record Index(Symbol[] byValue, long[] maxEnd, int leaves, int functions) {
    }

    private final Map<Integer, Index> bySection = new HashMap<>();

    SectionSymbols(RelocatableObject obj) {
        Map<Integer, List<Symbol>> lists = new HashMap<>();
        for (Symbol s : obj.symbols()) {
            if (s.isDefined() && !s.name().isEmpty() && s.type() != Elf.STT_SECTION && s.type() != Elf.STT_FILE
                && s.sectionIndex() < ElfReader.SHN_LORESERVE) {
                lists.computeIfAbsent(s.sectionIndex(), k -> new ArrayList<>()).add(s);
            }
        }
        lists.forEach((section, list) -> {
            Symbol[] sorted = list.toArray(new Symbol[0]);
            java.util.Arrays.sort(sorted, Comparator.comparingLong(Symbol::value));
            int leaves = Integer.highestOneBit(Math.max(1, sorted.length - 1)) << 1;
            long[] tree = new long[2 * leaves];
            java.util.Arrays.fill(tree, Long.MIN_VALUE);
            int functions = 0;
            for (int i = 0; i < sorted.length; i++) {
                tree[leaves + i] = end(sorted[i]);
                functions += sorted[i].isFunction() ? 1 : 0;
            }
            for (int n = leaves - 1; n >= 1; n--) {
                tree[n] = Math.max(tree[2 * n], tree[2 * n + 1]);
            }
            bySection.put(section, new Index(sorted, tree, leaves, functions));
        });
    }

    private static long end(Symbol s) {
        return s.value() + Math.max(s.size(), 1);
    }

    /** Functions defined in the section. */
    int functions(int section) {
        Index ix = bySection.get(section);
        return ix == null ? 0 : ix.functions;
    }

    /** Up to {@code limit} named symbols of {@code section} that cover some offset in {@code [lo, hi]}. */
    List<Symbol> covering(int section, long lo, long hi, int limit) {
        List<Symbol> out = new ArrayList<>();
        Index ix = bySection.get(section);
        if (ix == null) {
            return out;
        }
        // Candidates start at or before hi: the prefix [0, upper) of the sorted array.
        int a = 0;
        int b = ix.byValue.length;
        while (a < b) {
            int m = (a + b) >>> 1;
            if (ix.byValue[m].value() <= hi) {
                a = m + 1;
            } else {
                b = m;
            }
        }
        collect(ix, 1, 0, ix.leaves, a, lo, limit, out);
        return out;
    }

    /** Leaves of node {@code n} (covering {@code [from, to)}) below {@code upper} whose end exceeds {@code lo}. */
    private static void collect(Index ix, int n, int from, int to, int upper, long lo, int limit, List<Symbol> out) {
        if (out.size() >= limit || from >= upper || ix.maxEnd[n] <= lo) {
            return;
        }
        if (to - from == 1) {
            out.add(ix.byValue[from]);
            return;
        }
        int mid = (from + to) >>> 1;
        collect(ix, 2 * n, from, mid, upper, lo, limit, out);
        collect(ix, 2 * n + 1, mid, to, upper, lo, limit, out);
    }
}
