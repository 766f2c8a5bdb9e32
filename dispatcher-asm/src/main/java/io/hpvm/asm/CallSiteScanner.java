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
        return scanRange(decoder, mem, text.length, textAddress, functions, isEntry, branchTargets);
    }

    /**
     * As {@link #scan(Decoder, byte[], long, List, LongPredicate, java.util.function.LongConsumer)}, split between
     * one thread per decoder (the calling thread takes the first share) by bytes of code. The result is the same
     * as one scan's: sites in address order, undecodable functions in the given order, and every branch target
     * reported to {@code branchTargets} on the calling thread. {@code isEntry} is called from every thread.
     */
    public static Result scan(List<Decoder> decoders, byte[] text, long textAddress, List<long[]> functions,
                              LongPredicate isEntry, java.util.function.LongConsumer branchTargets) {
        int k = decoders.size();
        if (k <= 1 || functions.size() < 2 * k) {
            return scan(decoders.get(0), text, textAddress, functions, isEntry, branchTargets);
        }
        Memory mem = new Memory(Math.max(1, text.length));
        mem.write(0, text, 0, text.length);
        long total = 0;
        for (long[] f : functions) {
            total += Math.max(0, f[1] - f[0]);
        }
        // Contiguous shares of about total/k bytes each.
        List<List<long[]>> shares = new ArrayList<>();
        List<long[]> current = new ArrayList<>();
        long inShare = 0;
        for (long[] f : functions) {
            current.add(f);
            inShare += Math.max(0, f[1] - f[0]);
            if (inShare >= total / k && shares.size() < k - 1) {
                shares.add(current);
                current = new ArrayList<>();
                inShare = 0;
            }
        }
        shares.add(current);
        Result[] results = new Result[shares.size()];
        LongList[] targets = new LongList[shares.size()];
        Decoder.inParallel(decoders, shares.size(), (decoder, share) -> {
            if (share == 0) {
                results[0] = scanRange(decoder, mem, text.length, textAddress, shares.get(0), isEntry, branchTargets);
            } else {
                targets[share] = new LongList();
                results[share] = scanRange(decoder, mem, text.length, textAddress, shares.get(share), isEntry,
                    targets[share]::add);
            }
        });
        List<CallSite> sites = new ArrayList<>(results[0].sites());
        List<Long> undecodable = new ArrayList<>(results[0].undecodable());
        long scanned = results[0].bytesScanned();
        for (int i = 1; i < results.length; i++) {
            sites.addAll(results[i].sites());
            undecodable.addAll(results[i].undecodable());
            scanned += results[i].bytesScanned();
            for (int j = 0; j < targets[i].size(); j++) {
                branchTargets.accept(targets[i].get(j));
            }
        }
        sites.sort((a, b) -> Long.compare(a.address(), b.address()));
        return new Result(sites, undecodable, scanned);
    }

    private static Result scanRange(Decoder decoder, Memory mem, long textLength, long textAddress,
                                    List<long[]> functions, LongPredicate isEntry,
                                    java.util.function.LongConsumer branchTargets) {
        List<CallSite> sites = new ArrayList<>();
        List<Long> undecodable = new ArrayList<>();
        List<CallSite> found = new ArrayList<>();
        long scanned = 0;
        for (long[] f : functions) {
            long start = f[0];
            long end = f[1];
            if (start < textAddress || end > textAddress + textLength || end <= start) {
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
