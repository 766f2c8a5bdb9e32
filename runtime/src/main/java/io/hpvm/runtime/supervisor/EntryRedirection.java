package io.hpvm.runtime.supervisor;

import io.hpvm.asm.Decoder;
import io.hpvm.asm.Relocator;
import io.hpvm.runtime.session.CodeRegion;
import io.hpvm.runtime.session.SlotTable;

import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.function.LongPredicate;

/**
 * Entry redirection at launch: for each function whose first instructions can be proven movable, copy them into a
 * trampoline (its version 0, which the slot now holds) and overwrite them with {@code jmp stub}, so calls that were
 * not rewritten (function pointers, callbacks, short tail jumps, other libraries) reach the current version too.
 * Planned from the already-rewritten text, so a displaced call keeps going through its stub.
 *
 * <p>Planning (Capstone over each entry, the relocated copy decoded back) is independent per function and is
 * split between two threads, each with its own decoder (gcc's cc1: 26,244 entries); the results are then applied
 * in order on the calling thread.
 */
final class EntryRedirection {

    private EntryRedirection() {
    }

    static void redirect(CodeRegion code, SlotTable slots, List<long[]> codeRanges,
                         List<PatchableFunctions.Function> functions, Instrumentation.Setup s, TextPatches text) {
        TreeSet<Long> starts = new TreeSet<>();
        for (long[] r : codeRanges) {
            s.addBranchTarget(r[0]);
            starts.add(r[0]);
        }
        long[] sorted = s.branchTargets.toArray();
        Arrays.sort(sorted);
        LongPredicate forbidden = a -> Arrays.binarySearch(sorted, a) >= 0;
        int n = functions.size();
        Relocator.Plan[] plans = new Relocator.Plan[n];
        String[] notes = new String[n];
        try (Decoder first = new Decoder(); Decoder second = new Decoder()) {
            Decoder.inParallel(List.of(first, second), 2, (decoder, half) -> plan(decoder, half == 0 ? 0 : n / 2,
                half == 0 ? n / 2 : n, functions, s, text, starts, forbidden, plans, notes));
        }
        for (int i = 0; i < n; i++) {
            if (plans[i] == null) {
                s.entryNotes.put(i, notes[i]);
                continue;
            }
            long trampoline = trampoline(s, i);
            code.write(trampoline, plans[i].trampoline());
            slots.setRelease(i, trampoline);
            s.entryPatchAt[i] = plans[i].patchAt();
            s.entryOriginal[i] = text.bytes(plans[i].patchAt(), plans[i].displaced());
            text.patch(plans[i].patchAt(), plans[i].entryPatch(Instrumentation.stubAddress(s, i)));
            s.trampolineOf.put(i, trampoline);
        }
    }

    private static long trampoline(Instrumentation.Setup s, int index) {
        return s.trampolines + (long) index * Relocator.MAX_TRAMPOLINE;
    }

    /** Plans functions {@code [from, to)}: a valid plan in {@code plans}, or why not in {@code notes}. */
    private static void plan(Decoder decoder, int from, int to, List<PatchableFunctions.Function> functions,
                             Instrumentation.Setup s, TextPatches text, TreeSet<Long> starts, LongPredicate forbidden,
                             Relocator.Plan[] plans, String[] notes) {
        for (int i = from; i < to; i++) {
            PatchableFunctions.Function f = functions.get(i);
            long entry = s.bias + f.address();
            byte[] body = text.bytes(entry, f.size());
            if (body == null) {
                notes[i] = "code not in an executable segment";
                continue;
            }
            int padding = body.length < Relocator.JUMP_SIZE + 4
                ? unusedPadding(decoder, text, entry + f.size(), starts, forbidden) : 0;
            Relocator.Plan plan = Relocator.plan(decoder, body, entry, trampoline(s, i), forbidden, padding);
            if (plan.isValid()) {
                plans[i] = plan;
            } else {
                notes[i] = plan.refusal();
            }
        }
    }

    /**
     * Bytes of alignment filler (nop, int3, the 2-byte nop) right after a function, up to the next function and
     * no branch target among them: room a short function's jump may reach into.
     */
    private static int unusedPadding(Decoder decoder, TextPatches text, long from, TreeSet<Long> starts,
                                     LongPredicate forbidden) {
        Long next = starts.higher(from - 1);
        long end = Math.min(from + 16, next == null ? from + 16 : next);
        byte[] gap = end > from ? text.bytes(from, end - from) : null;
        if (gap == null) {
            return 0;
        }
        int[] ok = {0};
        decoder.decode(gap, from, insn -> {
            String m = insn.mnemonic();
            boolean filler = m.equals("nop") || m.equals("int3")
                || m.equals("xchg") && insn.operands().equals("ax, ax"); // 66 90, the 2-byte nop
            for (long a = insn.address(); filler && a < insn.address() + insn.size(); a++) {
                filler = !forbidden.test(a);
            }
            if (filler) {
                ok[0] += insn.size();
            }
            return filler;
        });
        return ok[0];
    }
}
