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

    /** @param decoder a detail-mode decoder */
    public ClobberAnalysis(Decoder decoder, CodeSource source) {
        this.decoder = decoder;
        this.source = source;
    }

    /** The caller-saved registers the function at {@code entry} may write (a {@link Registers} mask). */
    public long clobbers(long entry) {
        return clobbers(entry, new HashSet<>());
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
            String m = insn.mnemonic();
            boolean call = m.startsWith("call");
            boolean jump = m.startsWith("j") || m.startsWith("bnd j") || m.startsWith("notrack j");
            if (call || jump) {
                String op = insn.operands();
                if (op.startsWith("0x")) {
                    long target = Long.parseUnsignedLong(op.substring(2), 16);
                    if (call || target < address || target >= end) {
                        calls.add(target);
                    }
                } else if (call) {
                    writes[0] = Registers.CALLER_SAVED;
                }
            } else {
                writes[0] |= insn.callerSavedWritten();
            }
            return true;
        });
        if (decoded != code.length) {
            writes[0] = Registers.CALLER_SAVED;
        }
        return new Usage(writes[0], calls);
    }
}
