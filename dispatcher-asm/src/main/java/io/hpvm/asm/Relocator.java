package io.hpvm.asm;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongPredicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Moves the first instructions of a function into a trampoline, so that the entry can be overwritten with a
 * 5-byte {@code jmp rel32} to the function's stub (calls through function pointers, callbacks, short tail jumps and
 * other libraries then reach the current version too). The trampoline runs the displaced instructions at their new
 * address and jumps back after them: it is version 0 of the function.
 *
 * <p>Frida-style: {@link #plan} asks whether relocation is safe and says why not; each instruction is either copied,
 * re-encoded (relative branches become rel32 forms, RIP-relative displacements are adjusted) or refused; the result
 * is decoded back with Capstone and compared with what was meant. {@code endbr64} stays at the entry (CET) and the
 * jump goes after it.
 */
public final class Relocator {

    /** Bytes of the {@code jmp rel32} written at the entry. */
    public static final int JUMP_SIZE = 5;
    /** Upper bound of a trampoline: up to 5+14 displaced bytes, rel8 branches grown to rel32, the jump back. */
    public static final int MAX_TRAMPOLINE = 64;

    private static final Pattern RIP = Pattern.compile("\\[rip ([+-]) (0x[0-9a-f]+|\\d+)\\]");

    /**
     * What to do with one function.
     *
     * @param patchAt    where the jump goes (the entry, or after its endbr64)
     * @param displaced  bytes of whole instructions moved out (>= 5), to be overwritten
     * @param trampoline the trampoline's bytes, for {@code trampolineAt}
     * @param refusal    why the entry cannot be redirected, or null
     */
    public record Plan(long patchAt, int displaced, byte[] trampoline, String refusal) {
        public boolean isValid() {
            return refusal == null;
        }

        /** The bytes to write at {@code patchAt}: {@code jmp stub}, then int3 over the rest of the displaced bytes. */
        public byte[] entryPatch(long stub) {
            return entryJump(patchAt, displaced, stub);
        }
    }

    /**
     * An entry's jump as launch writes it and compaction rewrites it: {@code jmp target} at {@code at}, int3 over
     * the rest of {@code length} bytes.
     *
     * @throws IllegalArgumentException when {@code target} is out of rel32 range
     */
    public static byte[] entryJump(long at, int length, long target) {
        byte[] out = new byte[length];
        java.util.Arrays.fill(out, (byte) 0xcc);
        out[0] = (byte) 0xe9;
        ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).putInt(1, rel32(at + JUMP_SIZE, target));
        return out;
    }

    private Relocator() {
    }

    private static Plan refuse(long at, String why) {
        return new Plan(at, 0, null, why);
    }

    /**
     * Plans the redirection of the function whose code is {@code code} at {@code entry}.
     *
     * @param branchedTo true for addresses that some direct branch in the program targets, or that are another
     *                   function's entry: none may fall inside the displaced bytes (except the jump's own start)
     */
    public static Plan plan(Decoder decoder, byte[] code, long entry, long trampolineAt, LongPredicate branchedTo) {
        return plan(decoder, code, entry, trampolineAt, branchedTo, 0);
    }

    /**
     * As {@link #plan(Decoder, byte[], long, long, LongPredicate)}, for a function followed by {@code padding} bytes
     * of alignment filler that nothing reaches: a function shorter than the jump is then moved whole into its
     * trampoline, and the jump at its entry reaches into the padding.
     */
    public static Plan plan(Decoder decoder, byte[] code, long entry, long trampolineAt, LongPredicate branchedTo,
                            int padding) {
        int start = 0;
        if (code.length >= 4 && (code[0] & 0xff) == 0xf3 && (code[1] & 0xff) == 0x0f && (code[2] & 0xff) == 0x1e
            && (code[3] & 0xff) == 0xfa) {
            start = 4; // endbr64 stays: indirect branches must still land on it
        }
        long patchAt = entry + start;
        boolean whole = code.length - start < JUMP_SIZE;
        if (whole && code.length - start + padding < JUMP_SIZE) {
            return refuse(patchAt, "function is " + code.length + " bytes, shorter than the 5-byte jump"
                + (padding > 0 ? " even with the " + padding + " bytes of padding after it" : ""));
        }
        List<Insn> insns = new ArrayList<>();
        int[] covered = {0};
        String[] stop = {null};
        byte[] tail = java.util.Arrays.copyOfRange(code, start, code.length);
        decoder.decode(tail, patchAt, insn -> {
            Insn i = new Insn(insn.address(), bytes(insn), insn.mnemonic(), insn.operands());
            insns.add(i);
            covered[0] += i.bytes.length;
            if (!whole && covered[0] < JUMP_SIZE && (i.mnemonic.equals("ret") || i.mnemonic.equals("jmp")
                || i.mnemonic.startsWith("ud"))) {
                stop[0] = "function ends (" + i.mnemonic + " at 0x" + Long.toHexString(i.address) + ") within the "
                    + "first 5 bytes";
                return false;
            }
            return covered[0] < JUMP_SIZE;
        });
        if (stop[0] != null) {
            return refuse(patchAt, stop[0]);
        }
        if (whole ? covered[0] != code.length - start : covered[0] < JUMP_SIZE) {
            return refuse(patchAt, "the first bytes at 0x" + Long.toHexString(patchAt) + " do not decode");
        }
        // A whole short function: the jump covers it and part of the padding; the trampoline holds all of it.
        int displaced = whole ? JUMP_SIZE : covered[0];
        for (long a = patchAt + 1; a < patchAt + displaced; a++) {
            if (branchedTo.test(a)) {
                return refuse(patchAt, "a branch or another function's entry targets 0x" + Long.toHexString(a)
                    + ", inside the displaced bytes");
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        List<Expect> expected = new ArrayList<>();
        Insn call = null;
        for (Insn i : insns) {
            if (call != null) {
                return refuse(patchAt, "the call at 0x" + Long.toHexString(call.address) + " is not the last of the "
                    + "displaced instructions");
            }
            long at = trampolineAt + out.size();
            String why = relocateOne(i, at, patchAt, displaced, out);
            if (why != null) {
                return refuse(patchAt, why);
            }
            if (i.mnemonic.equals("call")) {
                call = i; // moveCall: the original return address pushed, then a jump to the callee
                expected.addAll(List.of(new Expect("lea", null), new Expect("mov", null), new Expect("mov", null),
                    new Expect("jmp", absoluteTarget(i.end(), i.operands))));
            } else {
                expected.add(new Expect(i.mnemonic, absoluteTarget(i.end(), i.operands)));
            }
        }
        if (call == null) { // the callee of a moved call returns to the same place
            long back = trampolineAt + out.size();
            // After a whole short function this jump is only reached if it fell through into its padding: harmless.
            writeBranch(out, 0xe9, -1, back, patchAt + covered[0]);
            expected.add(new Expect("jmp", patchAt + covered[0]));
        }
        byte[] trampoline = out.toByteArray();
        if (trampoline.length > MAX_TRAMPOLINE) {
            return refuse(patchAt, "trampoline would be " + trampoline.length + " bytes");
        }
        String mismatch = verify(decoder, trampoline, trampolineAt, expected);
        if (mismatch != null) {
            return refuse(patchAt, "relocated code does not decode as intended: " + mismatch);
        }
        return new Plan(patchAt, displaced, trampoline, null);
    }

    /**
     * Where a thread stopped at {@code rip} among an entry's displaced instructions continues equivalently once the
     * entry is overwritten with the jump again: the trampoline's copy of the instruction that starts at {@code rip}.
     * {@link #plan} moves instructions one for one (a relative branch re-encoded keeps its mnemonic; a moved call,
     * always the last, becomes four instructions that start with {@code lea}), so the k-th displaced instruction is
     * the trampoline's k-th. The end of the copied instructions maps to the trampoline's jump back: a thread whose
     * interrupted system call the kernel restarts two bytes before its instruction pointer needs that.
     *
     * @param displaced    the entry's original bytes at {@code patchAt} (as {@link Plan#displaced} long)
     * @param trampoline   the trampoline's bytes at {@code trampolineAt} (may run past its end)
     * @return the equivalent address in the trampoline, or -1 when {@code rip} is no instruction boundary there
     */
    public static long equivalent(Decoder decoder, byte[] displaced, long patchAt, byte[] trampoline,
                                  long trampolineAt, long rip) {
        List<long[]> from = new ArrayList<>(); // {address, end}
        List<String> fromNames = new ArrayList<>();
        decoder.decode(displaced, patchAt, insn -> {
            from.add(new long[] {insn.address(), insn.address() + insn.size()});
            fromNames.add(insn.mnemonic());
            return true;
        });
        List<Long> to = new ArrayList<>();
        List<String> toNames = new ArrayList<>();
        decoder.decode(trampoline, trampolineAt, insn -> {
            to.add(insn.address());
            toNames.add(insn.mnemonic());
            return to.size() <= from.size();
        });
        for (int k = 0; k < from.size() && k < to.size(); k++) {
            boolean same = fromNames.get(k).equals(toNames.get(k));
            boolean movedCall = fromNames.get(k).equals("call") && toNames.get(k).equals("lea");
            if (!same && !movedCall) {
                return -1;
            }
            if (from.get(k)[0] == rip) {
                return to.get(k);
            }
            if (movedCall) {
                return -1; // its return address is outside the displaced bytes: never moved
            }
            if (from.get(k)[1] == rip && k + 1 < to.size() && toNames.get(k + 1).equals("jmp")
                && (k + 1 == from.size() || !fromNames.get(k + 1).equals(toNames.get(k + 1)))) {
                return to.get(k + 1); // the end of the copied instructions: the jump back
            }
        }
        return -1;
    }

    private record Insn(long address, byte[] bytes, String mnemonic, String operands) {
        long end() {
            return address + bytes.length;
        }
    }

    private static byte[] bytes(Decoder.Insn insn) {
        byte[] b = new byte[insn.size()];
        for (int k = 0; k < b.length; k++) {
            b[k] = (byte) insn.byteAt(k);
        }
        return b;
    }

    /** Appends the relocated form of {@code i} (placed at {@code at}); returns why it cannot be moved, or null. */
    private static String relocateOne(Insn i, long at, long patchAt, int displaced, ByteArrayOutputStream out) {
        byte[] b = i.bytes;
        int p = 0;
        while (p < b.length && ((b[p] & 0xff) == 0xf2 || (b[p] & 0xff) == 0x2e || (b[p] & 0xff) == 0x3e)) {
            p++; // bnd / branch-hint prefixes: dropped from a re-encoded branch
        }
        int op = b[p] & 0xff;
        boolean rel8Jcc = op >= 0x70 && op <= 0x7f && b.length == p + 2;
        boolean rel8Jmp = op == 0xeb && b.length == p + 2;
        boolean rel32 = (op == 0xe8 || op == 0xe9) && b.length == p + 5
            || op == 0x0f && p + 1 < b.length && (b[p + 1] & 0xf0) == 0x80 && b.length == p + 6;
        if (op == 0xe0 || op == 0xe1 || op == 0xe2 || op == 0xe3) {
            return "'" + i.mnemonic + "' at 0x" + Long.toHexString(i.address) + " has only a rel8 form";
        }
        boolean indirectCall = op == 0xff && p + 1 < b.length && ((b[p + 1] >> 3) & 7) == 2
            || (op & 0xf0) == 0x40 && p + 2 < b.length && (b[p + 1] & 0xff) == 0xff && ((b[p + 2] >> 3) & 7) == 2;
        if (op == 0xe8 && b.length == p + 5 || indirectCall) {
            return moveCall(i, b, p, op == 0xe8, at, out);
        }
        // jmp through a register or memory (a tail call through a function pointer, redis's "jmp [rdi + 0x78]"):
        // it goes to the same place from anywhere, a RIP-relative operand aside, which copyAt adjusts
        boolean indirectJmp = op == 0xff && p + 1 < b.length && ((b[p + 1] >> 3) & 7) == 4
            || (op & 0xf0) == 0x40 && p + 2 < b.length && (b[p + 1] & 0xff) == 0xff && ((b[p + 2] >> 3) & 7) == 4;
        if (indirectJmp) {
            return copyAt(i, b, at, out);
        }
        if (rel8Jcc || rel8Jmp || rel32) {
            long target = i.end() + (rel8Jcc || rel8Jmp ? b[b.length - 1]
                : ByteBuffer.wrap(b, b.length - 4, 4).order(ByteOrder.LITTLE_ENDIAN).getInt());
            if (target > patchAt && target < patchAt + displaced) {
                return "branch at 0x" + Long.toHexString(i.address) + " targets the displaced bytes";
            }
            if (target == patchAt) {
                return "branch at 0x" + Long.toHexString(i.address) + " loops back to the entry";
            }
            if (op == 0xe9 || rel8Jmp) {
                return writeBranch(out, 0xe9, -1, at, target);
            }
            int cc = rel8Jcc ? op & 0x0f : b[p + 1] & 0x0f;
            return writeBranch(out, 0x0f, 0x80 | cc, at, target);
        }
        // syscall runs the same anywhere (it returns to the next instruction, in the trampoline then); a thread
        // whose interrupted syscall the kernel restarts at rip - 2 is taken care of by equivalent().
        if (i.mnemonic.startsWith("xbegin") || i.mnemonic.startsWith("j")
            || i.mnemonic.contains("call") && !i.mnemonic.equals("syscall")) {
            return "'" + i.mnemonic + " " + i.operands + "' at 0x" + Long.toHexString(i.address)
                + " is a branch hpvm cannot move (" + (i.mnemonic.startsWith("xbegin") ? "a transaction's start"
                : i.mnemonic.startsWith("lj") || i.mnemonic.startsWith("lc") ? "a far branch" : "not re-encodable")
                + ")";
        }
        return copyAt(i, b, at, out);
    }

    /** Copies {@code bytes} (the instruction {@code i}, or a variant of the same length) to {@code at}. */
    private static String copyAt(Insn i, byte[] bytes, long at, ByteArrayOutputStream out) {
        Matcher m = RIP.matcher(i.operands);
        if (!m.find()) {
            out.write(bytes, 0, bytes.length);
            return null;
        }
        long disp = Long.decode(m.group(2)) * (m.group(1).equals("-") ? -1 : 1);
        long target = i.end() + disp;
        long newDisp = target - (at + bytes.length);
        if (newDisp < Integer.MIN_VALUE || newDisp > Integer.MAX_VALUE) {
            return "RIP-relative operand at 0x" + Long.toHexString(i.address) + " cannot reach 0x"
                + Long.toHexString(target) + " from the trampoline";
        }
        int field = -1;
        for (int k = bytes.length - 4; k >= 1; k--) {
            if (ByteBuffer.wrap(bytes, k, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() == (int) disp) {
                if (field >= 0) {
                    return "RIP-relative displacement at 0x" + Long.toHexString(i.address) + " is ambiguous";
                }
                field = k;
            }
        }
        if (field < 0) {
            return "RIP-relative displacement at 0x" + Long.toHexString(i.address) + " not found in its bytes";
        }
        byte[] moved = bytes.clone();
        ByteBuffer.wrap(moved).order(ByteOrder.LITTLE_ENDIAN).putInt(field, (int) newDisp);
        out.write(moved, 0, moved.length);
        return null;
    }

    /** Bytes of {@link #moveCall}'s {@code lea rsp, [rsp-8]; mov dword [rsp], lo; mov dword [rsp+4], hi}. */
    static final int PUSH_RETURN_SIZE = 5 + 7 + 8;

    /**
     * A call among the displaced instructions (always the last: see {@link #plan}) must not return into the
     * trampoline: the unwinder (C++ exceptions, backtrace(), gdb, perf) knows nothing of trampoline addresses and
     * would stop there. So the trampoline pushes the call's original return address, which is where the jump back
     * would go anyway, and jumps to the target: {@code lea rsp, [rsp-8]} (flags untouched, as a call leaves them),
     * two 4-byte stores, then {@code jmp rel32} or the indirect call's own operand as a {@code jmp}. An indirect
     * call whose operand uses rsp is refused: rsp has moved by then.
     */
    private static String moveCall(Insn i, byte[] b, int p, boolean direct, long at, ByteArrayOutputStream out) {
        if (!direct && i.operands.contains("sp")) {
            return "'call " + i.operands + "' at 0x" + Long.toHexString(i.address) + " uses the stack pointer";
        }
        long ret = i.end();
        out.write(new byte[] {0x48, (byte) 0x8d, 0x64, 0x24, (byte) 0xf8}, 0, 5);
        ByteBuffer st = ByteBuffer.allocate(15).order(ByteOrder.LITTLE_ENDIAN);
        st.put((byte) 0xc7).put((byte) 0x04).put((byte) 0x24).putInt((int) ret);
        st.put((byte) 0xc7).put((byte) 0x44).put((byte) 0x24).put((byte) 0x04).putInt((int) (ret >>> 32));
        out.write(st.array(), 0, 15);
        long jmpAt = at + PUSH_RETURN_SIZE;
        if (direct) {
            long target = i.end() + ByteBuffer.wrap(b, b.length - 4, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
            return writeBranch(out, 0xe9, -1, jmpAt, target);
        }
        byte[] jmp = b.clone(); // ff /2 (call r/m64) -> ff /4 (jmp r/m64): same operand, same length
        int modrm = (b[p] & 0xf0) == 0x40 ? p + 2 : p + 1;
        jmp[modrm] = (byte) ((jmp[modrm] & 0xc7) | (4 << 3));
        return copyAt(i, jmp, jmpAt, out);
    }

    /** {@code call/jmp rel32} (op E8/E9, cc = -1) or {@code jcc rel32} (0F, 8x) at {@code at} to {@code target}. */
    private static String writeBranch(ByteArrayOutputStream out, int op, int cc, long at, long target) {
        int len = cc < 0 ? 5 : 6;
        long d = target - (at + len);
        if (d < Integer.MIN_VALUE || d > Integer.MAX_VALUE) {
            return "branch target 0x" + Long.toHexString(target) + " is out of rel32 range of the trampoline";
        }
        out.write(op);
        if (cc >= 0) {
            out.write(cc);
        }
        byte[] rel = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) d).array();
        out.write(rel, 0, 4);
        return null;
    }

    /**
     * The rel32 displacement from {@code from} (the end of the branch) to {@code to}.
     *
     * @throws IllegalArgumentException when it does not fit in 32 bits
     */
    public static int rel32(long from, long to) {
        long d = to - from;
        if (d < Integer.MIN_VALUE || d > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("0x" + Long.toHexString(to) + " is out of rel32 range of 0x"
                + Long.toHexString(from));
        }
        return (int) d;
    }

    /** An instruction the trampoline must decode to: its mnemonic, and its absolute target where it has one. */
    private record Expect(String mnemonic, Long target) {
    }

    /**
     * Decodes the trampoline back: the expected mnemonics in order (a rel8 jmp may not come back as anything but
     * jmp), with the same absolute branch and RIP-relative targets as the originals, ending with the jump back or
     * with a moved call's jump to its callee.
     */
    private static String verify(Decoder decoder, byte[] trampoline, long at, List<Expect> expected) {
        List<String> got = new ArrayList<>();
        List<Long> targets = new ArrayList<>();
        long n = decoder.decode(trampoline, at, insn -> {
            got.add(insn.mnemonic());
            targets.add(absoluteTarget(insn.address() + insn.size(), insn.operands()));
            return true;
        });
        if (n != trampoline.length) {
            return "trampoline does not decode to its end";
        }
        List<String> want = expected.stream().map(Expect::mnemonic).toList();
        if (!got.equals(want)) {
            return "expected " + want + ", decoded " + got;
        }
        for (int k = 0; k < expected.size(); k++) {
            Long t = expected.get(k).target();
            if (t != null && !t.equals(targets.get(k))) {
                return "instruction " + k + " (" + got.get(k) + ") should target 0x" + Long.toHexString(t)
                    + " but targets " + (targets.get(k) == null ? "nothing" : "0x" + Long.toHexString(targets.get(k)));
            }
        }
        return null;
    }

    /** The absolute address a direct branch or a RIP-relative operand refers to, or null. */
    private static Long absoluteTarget(long next, String operands) {
        if (operands.matches("0x[0-9a-f]+")) {
            return Long.parseUnsignedLong(operands.substring(2), 16);
        }
        Matcher m = RIP.matcher(operands);
        if (m.find()) {
            return next + Long.decode(m.group(2)) * (m.group(1).equals("-") ? -1 : 1);
        }
        return null;
    }
}
