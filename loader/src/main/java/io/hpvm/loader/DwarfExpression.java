package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Evaluates the DWARF expressions call frame information uses ({@code DW_CFA_def_cfa_expression},
 * {@code DW_CFA_expression}, {@code DW_CFA_val_expression}): glibc's signal trampoline {@code __restore_rt} finds the
 * interrupted registers in the {@code ucontext} this way, the PLT computes its CFA from rip, and gcc's {@code main}
 * with a realigned stack reads its CFA through rbp. The stack machine of DWARF 5 section 2.5 without the operations
 * that describe locations rather than compute values ({@code DW_OP_reg*}, pieces, TLS, calls): an expression using
 * them is refused, and the unwinder that asked knows it cannot go on precisely.
 */
public final class DwarfExpression {

    /** The memory of the process whose frame is unwound. */
    @FunctionalInterface
    public interface Memory {
        /** The 8 bytes at {@code address}. */
        long read(long address) throws UnwindException;
    }

    /** The registers of the frame an expression is evaluated in. */
    @FunctionalInterface
    interface Registers {
        /** The value of DWARF register {@code reg} (x86-64 numbering: 0 rax ... 7 rsp, 8-15 r8-r15, 16 rip). */
        long get(int reg) throws UnwindException;
    }

    private DwarfExpression() {
    }

    /** Evaluates {@code code} with {@code initial} pushed first (the CFA, for register rules); the top of the stack. */
    static long evaluate(byte[] code, Registers regs, Memory m, Long initial) throws UnwindException {
        long[] stack = new long[64];
        int sp = 0;
        if (initial != null) {
            stack[sp++] = initial;
        }
        ByteBuffer b = ByteBuffer.wrap(code).order(ByteOrder.LITTLE_ENDIAN);
        int steps = 0;
        while (b.hasRemaining()) {
            if (++steps > 10_000 || sp >= stack.length - 2) {
                throw new UnwindException("a DWARF expression runs too long or too deep");
            }
            int op = b.get() & 0xff;
            if (op >= 0x30 && op <= 0x4f) { // DW_OP_lit0..31
                stack[sp++] = op - 0x30;
                continue;
            }
            if (op >= 0x70 && op <= 0x8f) { // DW_OP_breg0..31
                stack[sp++] = regs.get(op - 0x70) + Leb.sleb(b);
                continue;
            }
            switch (op) {
                case 0x03 -> stack[sp++] = b.getLong(); // addr
                case 0x06 -> stack[sp - 1] = m.read(stack[sp - 1]); // deref
                case 0x08 -> stack[sp++] = b.get() & 0xff;
                case 0x09 -> stack[sp++] = b.get();
                case 0x0a -> stack[sp++] = b.getShort() & 0xffff;
                case 0x0b -> stack[sp++] = b.getShort();
                case 0x0c -> stack[sp++] = Integer.toUnsignedLong(b.getInt());
                case 0x0d -> stack[sp++] = b.getInt();
                case 0x0e, 0x0f -> stack[sp++] = b.getLong();
                case 0x10 -> stack[sp++] = Leb.uleb(b);
                case 0x11 -> stack[sp++] = Leb.sleb(b);
                case 0x12 -> stack[sp++] = need(stack, sp, 1);
                case 0x13 -> sp = pop(sp, 1);
                case 0x14 -> { // over
                    stack[sp] = need(stack, sp, 2);
                    sp++;
                }
                case 0x15 -> { // pick
                    int i = b.get() & 0xff;
                    stack[sp] = need(stack, sp, i + 1);
                    sp++;
                }
                case 0x16 -> { // swap
                    long t = need(stack, sp, 1);
                    stack[sp - 1] = stack[sp - 2];
                    stack[sp - 2] = t;
                }
                case 0x17 -> { // rot
                    long t = need(stack, sp, 3);
                    stack[sp - 3] = stack[sp - 1];
                    stack[sp - 1] = stack[sp - 2];
                    stack[sp - 2] = t;
                }
                case 0x19 -> stack[sp - 1] = Math.abs(need(stack, sp, 1));
                case 0x1f -> stack[sp - 1] = -need(stack, sp, 1);
                case 0x20 -> stack[sp - 1] = ~need(stack, sp, 1);
                case 0x23 -> stack[sp - 1] = need(stack, sp, 1) + Leb.uleb(b);
                case 0x94 -> { // deref_size
                    int size = b.get() & 0xff;
                    long v = m.read(need(stack, sp, 1));
                    stack[sp - 1] = size >= 8 ? v : v & ((1L << (size * 8)) - 1);
                }
                case 0x92 -> { // bregx
                    int reg = (int) Leb.uleb(b);
                    stack[sp++] = regs.get(reg) + Leb.sleb(b);
                }
                case 0x28 -> { // bra
                    short skip = b.getShort();
                    sp = pop(sp, 1);
                    if (stack[sp] != 0) {
                        jump(b, skip);
                    }
                }
                case 0x2f -> jump(b, b.getShort());
                case 0x96 -> {
                }
                case 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x29, 0x2a, 0x2b, 0x2c, 0x2d,
                     0x2e -> {
                    long y = need(stack, sp, 1);
                    long x = need(stack, sp, 2);
                    sp--;
                    stack[sp - 1] = binary(op, x, y);
                }
                default -> throw new UnwindException("DWARF expression operation " + Elf.hex(op) + " is not "
                    + "supported");
            }
        }
        if (sp == 0) {
            throw new UnwindException("a DWARF expression left nothing on its stack");
        }
        return stack[sp - 1];
    }

    private static long binary(int op, long x, long y) throws UnwindException {
        return switch (op) {
            case 0x1a -> x & y;
            case 0x1b -> {
                if (y == 0) {
                    throw new UnwindException("a DWARF expression divides by zero");
                }
                yield x / y;
            }
            case 0x1c -> x - y;
            case 0x1d -> {
                if (y == 0) {
                    throw new UnwindException("a DWARF expression divides by zero");
                }
                yield Long.remainderUnsigned(x, y);
            }
            case 0x1e -> x * y;
            case 0x21 -> x | y;
            case 0x22 -> x + y;
            case 0x24 -> x << y;
            case 0x25 -> x >>> y;
            case 0x26 -> x >> y;
            case 0x27 -> x ^ y;
            case 0x29 -> x == y ? 1 : 0;
            case 0x2a -> x >= y ? 1 : 0;
            case 0x2b -> x > y ? 1 : 0;
            case 0x2c -> x <= y ? 1 : 0;
            case 0x2d -> x < y ? 1 : 0;
            default -> x != y ? 1 : 0; // 0x2e ne
        };
    }

    private static long need(long[] stack, int sp, int depth) throws UnwindException {
        if (sp < depth) {
            throw new UnwindException("a DWARF expression pops more than it pushed");
        }
        return stack[sp - depth];
    }

    private static int pop(int sp, int n) throws UnwindException {
        if (sp < n) {
            throw new UnwindException("a DWARF expression pops more than it pushed");
        }
        return sp - n;
    }

    private static void jump(ByteBuffer b, int skip) throws UnwindException {
        int to = b.position() + skip;
        if (to < 0 || to > b.limit()) {
            throw new UnwindException("a DWARF expression branches outside itself");
        }
        b.position(to);
    }
}
