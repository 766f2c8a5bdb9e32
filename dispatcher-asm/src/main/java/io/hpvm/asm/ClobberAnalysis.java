package io.hpvm.asm;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * Which caller-saved registers a function may write, including through the functions it calls directly. This is
 * what gcc's {@code -fipa-ra} (on at -O2) computes for a function whose body it can see: a caller may then keep a
 * value in a caller-saved register across the call, because the callee provably leaves it alone. A new version that
 * writes such a register would corrupt that caller, so the swap engine compares the old version's set with the
 * new one's (see {@link Thunks}).
 *
 * <p>Direction of error: a register is counted as written only when an instruction provably writes it, or when the
 * function calls something unknown (an indirect call, a call outside the known functions: the full ABI set). An
 * indirect {@code jmp} is taken to be a jump table inside the function. So the set is never larger than gcc's, and
 * the registers hpvm preserves are never fewer than the ones callers may rely on.
 */
public final class ClobberAnalysis {

    /** The code of the functions the analysis may follow. */
    @FunctionalInterface
    public interface CodeSource {
        /** The bytes of the function whose entry is {@code entry}, or null when it is not known. */
        byte[] code(long entry);
    }

    private final Decoder decoder;
    private final CodeSource source;
    private final Map<Long, Long> memo = new HashMap<>();
    private final long byteBudget;
    private final long whenOverBudget;
    private long decodedBytes;
    private boolean overBudget;

    /** @param decoder a detail-mode decoder */
    public ClobberAnalysis(Decoder decoder, CodeSource source) {
        this(decoder, source, Long.MAX_VALUE, Registers.CALLER_SAVED);
    }

    /**
     * An analysis that decodes at most {@code byteBudget} bytes (each function once: results are memoised), and
     * answers {@code whenOverBudget} when the code reachable from an entry is larger. Which answer is safe depends on
     * the role: for a new version, "writes everything"; for the original it is compared with, "writes nothing".
     */
    public ClobberAnalysis(Decoder decoder, CodeSource source, long byteBudget, long whenOverBudget) {
        this.decoder = decoder;
        this.source = source;
        this.byteBudget = byteBudget;
        this.whenOverBudget = whenOverBudget;
    }

    /** The caller-saved registers the function at {@code entry} may write (a {@link Registers} mask). */
    public long clobbers(long entry) {
        long mask = clobbers(entry, new HashSet<>());
        return overBudget ? whenOverBudget : mask;
    }

    private long clobbers(long entry, Set<Long> active) {
        Long known = memo.get(entry);
        if (known != null) {
            return known;
        }
        byte[] code = source.code(entry);
        if (code == null) {
            return Registers.CALLER_SAVED;
        }
        if (!active.add(entry)) {
            return 0; // recursion: its writes are being collected already
        }
        if (overBudget || code.length > byteBudget - decodedBytes) {
            overBudget = true;
            active.remove(entry);
            return whenOverBudget;
        }
        decodedBytes += code.length;
        Usage u = usage(code, entry);
        long mask = u.writes;
        for (long target : u.calls) {
            if (mask == Registers.CALLER_SAVED) {
                break;
            }
            mask |= clobbers(target, active);
        }
        active.remove(entry);
        memo.put(entry, mask);
        return mask;
    }

    /** What one body writes itself and whom it calls or tail-jumps to. */
    public record Usage(long writes, Set<Long> calls) {
    }

    /**
     * Decodes {@code code} at {@code address}: registers written by its own instructions (all caller-saved ones if
     * it makes an indirect call or does not decode), and the targets of direct calls and of jumps leaving it.
     */
    public Usage usage(byte[] code, long address) {
        long end = address + code.length;
        long[] writes = {0};
        Set<Long> calls = new HashSet<>();
        long decoded = decoder.decode(code, address, insn -> {
            switch (insn.branch()) {
                case Decoder.Insn.DIRECT_CALL -> calls.add(insn.branchTarget());
                case Decoder.Insn.DIRECT_JUMP -> {
                    long target = insn.branchTarget();
                    if (target < address || target >= end) {
                        calls.add(target); // a tail call, or a jump to the function's .cold part
                    }
                }
                case Decoder.Insn.INDIRECT_CALL -> writes[0] = Registers.CALLER_SAVED;
                case Decoder.Insn.INDIRECT_JUMP -> {
                    // taken to be a jump table inside the function (see the class comment)
                }
                default -> writes[0] |= insn.callerSavedWritten();
            }
            return true;
        });
        if (decoded != code.length) {
            writes[0] = Registers.CALLER_SAVED;
        }
        return new Usage(writes[0], calls);
    }
}
