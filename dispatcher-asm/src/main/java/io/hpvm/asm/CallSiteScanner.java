package io.hpvm.asm;

import com.sun.jna.Memory;

import java.util.ArrayList;
import java.util.List;
import java.util.function.LongPredicate;

/**
 * Finds the call sites hpvm may rewrite: inside each given function range, every instruction Capstone decodes as a
 * direct near {@code call}, {@code jmp} or {@code jcc} with a 32-bit displacement whose target is accepted by
 * {@code isEntry}. The branch kind is taken from the encoding itself (optional {@code bnd}/branch-hint prefixes,
 * then E8, E9 or 0F 80..8F, then exactly four displacement bytes), so what is rewritten is what was proven.
 *
 * <p>A function whose bytes do not decode to the end is skipped whole (no site in it is trusted) and reported.
 */
public final class CallSiteScanner {

    /**
     * The outcome of a scan.
     *
     * @param sites        rewritable sites, in address order
     * @param undecodable  start addresses of functions that did not decode completely (nothing rewritten in them)
     * @param bytesScanned bytes of code decoded
     */
    public record Result(List<CallSite> sites, List<Long> undecodable, long bytesScanned) {
    }

    private CallSiteScanner() {
    }

    /**
     * Scans {@code functions} ({@code [start, end)} pairs of addresses) inside {@code text}, which is the memory at
     * {@code textAddress}.
     */
    public static Result scan(Decoder decoder, byte[] text, long textAddress, List<long[]> functions,
                              LongPredicate isEntry) {
        return scan(decoder, text, textAddress, functions, isEntry, t -> { });
    }

    /**
     * As {@link #scan(Decoder, byte[], long, List, LongPredicate)}, also reporting the target of every direct
     * branch (rel8 and rel32, wherever it goes) to {@code branchTargets}: the relocator must not displace bytes
     * that any branch lands on.
     */
    public static Result scan(Decoder decoder, byte[] text, long textAddress, List<long[]> functions,
                              LongPredicate isEntry, java.util.function.LongConsumer branchTargets) {
        Memory mem = new Memory(Math.max(1, text.length));
        mem.write(0, text, 0, text.length);
        List<CallSite> sites = new ArrayList<>();
        List<Long> undecodable = new ArrayList<>();
        List<CallSite> found = new ArrayList<>();
        long scanned = 0;
        for (long[] f : functions) {
            long start = f[0];
            long end = f[1];
            if (start < textAddress || end > textAddress + text.length || end <= start) {
                continue;
            }
            found.clear();
            long decoded = decoder.decode(mem.share(start - textAddress), end - start, start, insn -> {
                CallSite site = classify(insn);
                if (site != null) {
                    branchTargets.accept(site.target());
                    if (isEntry.test(site.target())) {
                        found.add(site);
                    }
                } else {
                    long t = rel8Target(insn);
                    if (t != -1) {
                        branchTargets.accept(t);
                    }
                }
                return true;
            });
            scanned += decoded;
            if (decoded != end - start) {
                undecodable.add(start);
            } else {
                sites.addAll(found);
            }
        }
        sites.sort((a, b) -> Long.compare(a.address(), b.address()));
        return new Result(sites, undecodable, scanned);
    }

    /** The target of a short branch (jmp/jcc/loop/jrcxz rel8), or -1. */
    static long rel8Target(Decoder.Insn insn) {
        int size = insn.size();
        int i = size - 2;
        if (i < 0) {
            return -1;
        }
        int op = insn.byteAt(i);
        if (op == 0xeb || op >= 0x70 && op <= 0x7f || op >= 0xe0 && op <= 0xe3) {
            for (int k = 0; k < i; k++) {
                int p = insn.byteAt(k);
                if (p != 0xf2 && p != 0x2e && p != 0x3e && p != 0x67) {
                    return -1;
                }
            }
            return insn.address() + size + (byte) insn.byteAt(size - 1);
        }
        return -1;
    }

    /** The direct rel32 branch this instruction is, or null. */
    static CallSite classify(Decoder.Insn insn) {
        int size = insn.size();
        int i = 0;
        while (i < size) {
            int b = insn.byteAt(i);
            if (b == 0xf2 || b == 0x2e || b == 0x3e) {
                i++;
            } else {
                break;
            }
        }
        if (i >= size) {
            return null;
        }
        int op = insn.byteAt(i);
        CallSite.Kind kind;
        int opLen;
        if (op == 0xe8) {
            kind = CallSite.Kind.CALL;
            opLen = 1;
        } else if (op == 0xe9) {
            kind = CallSite.Kind.JMP;
            opLen = 1;
        } else if (op == 0x0f && i + 1 < size && (insn.byteAt(i + 1) & 0xf0) == 0x80) {
            kind = CallSite.Kind.JCC;
            opLen = 2;
        } else {
            return null;
        }
        if (i + opLen + 4 != size) {
            return null;
        }
        long target = insn.address() + size + insn.int32At(size - 4);
        return new CallSite(insn.address(), size, kind, target);
    }
}
