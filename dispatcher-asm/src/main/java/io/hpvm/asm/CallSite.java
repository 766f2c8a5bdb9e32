package io.hpvm.asm;

/**
 * A proven direct branch to a function entry: {@code call rel32}, {@code jmp rel32} or {@code jcc rel32}, whose
 * displacement is the last four bytes of the instruction.
 *
 * @param address instruction address
 * @param length  instruction length
 * @param kind    which branch
 * @param target  branch target (a function entry)
 */
public record CallSite(long address, int length, Kind kind, long target) {

    /** The kinds of rewritable branch. */
    public enum Kind { CALL, JMP, JCC }

    /** Address of the rel32 field. */
    public long displacementAddress() {
        return address + length - 4;
    }

    /** The rel32 value that makes this instruction branch to {@code newTarget}. */
    public int displacementTo(long newTarget) {
        long d = newTarget - (address + length);
        if (d < Integer.MIN_VALUE || d > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("branch at 0x" + Long.toHexString(address) + " cannot reach 0x"
                + Long.toHexString(newTarget));
        }
        return (int) d;
    }
}
