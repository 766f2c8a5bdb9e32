package io.hpvm.asm;

import capstone.Capstone;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.LongByReference;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * An x86-64 instruction decoder over Capstone's raw {@code cs_disasm}, without detail mode. Callers see each
 * instruction's address, length and bytes through a flyweight {@link Insn}; nothing is allocated per instruction.
 * Not thread-safe: one decoder per thread.
 */
public final class Decoder implements AutoCloseable {

    /** {@code sizeof(cs_insn)} and field offsets in Capstone 4 (checked against a known encoding at start). */
    private static final int INSN_SIZE = 240;
    private static final int OFF_ADDRESS = 8;
    private static final int OFF_SIZE = 16;
    private static final int OFF_BYTES = 18;
    private static final int OFF_MNEMONIC = 34;
    private static final int OFF_OPERANDS = 66;
    private static final int BATCH = 4096;

    private static volatile CapstoneNative lib;

    private final long handle;
    private final boolean detail;
    /** {@code cs_regs regs_read, regs_write} (64 uint16 each) and the two uint8 counts, for cs_regs_access. */
    private final Memory regs = new Memory(64 * 2 * 2 + 2);
    private static final long REGS_WRITE = 128;
    private static final long READ_COUNT = 256;
    private static final long WRITE_COUNT = 257;

    /** A decoded instruction, valid only during {@link Sink#accept}. */
    public static final class Insn {
        private ByteBuffer buf;
        private int base;
        private long nativeInsn;
        private Decoder owner;

        public long address() {
            return buf.getLong(base + OFF_ADDRESS);
        }

        public int size() {
            return Short.toUnsignedInt(buf.getShort(base + OFF_SIZE));
        }

        /** Byte {@code i} of the encoding (0 <= i < size). */
        public int byteAt(int i) {
            return Byte.toUnsignedInt(buf.get(base + OFF_BYTES + i));
        }

        /** The little-endian int32 at byte {@code i} of the encoding. */
        public int int32At(int i) {
            return buf.getInt(base + OFF_BYTES + i);
        }

        /** Not a branch ({@link #branch()}). */
        public static final int NOT_BRANCH = 0;
        /** {@code call rel32}: {@link #branchTarget()} is its target. */
        public static final int DIRECT_CALL = 1;
        /** {@code jmp rel8/rel32}, {@code jcc rel8/rel32}, {@code jrcxz}: {@link #branchTarget()} is its target. */
        public static final int DIRECT_JUMP = 2;
        /** {@code call} through a register or memory. */
        public static final int INDIRECT_CALL = 3;
        /** {@code jmp} through a register or memory. */
        public static final int INDIRECT_JUMP = 4;

        /**
         * What kind of branch this is, from its opcode bytes (after legacy and REX prefixes), without building the
         * mnemonic text: analyses that visit every instruction of a large function only look at this.
         */
        public int branch() {
            int n = size();
            int i = opcodeIndex();
            if (i >= n) {
                return NOT_BRANCH;
            }
            int op = byteAt(i);
            boolean operandSize = i > 0 && hasPrefix(0x66, i);
            if (op == 0xe8) {
                return operandSize ? INDIRECT_CALL : DIRECT_CALL; // a rel16 call: treated as unknown
            }
            if (op == 0xe9 && !operandSize || op == 0xeb || op >= 0x70 && op <= 0x7f || op == 0xe3
                || op == 0x0f && i + 1 < n && (byteAt(i + 1) & 0xf0) == 0x80) {
                return DIRECT_JUMP;
            }
            if (op == 0xff && i + 1 < n) {
                int reg = (byteAt(i + 1) >> 3) & 7;
                return reg == 2 || reg == 3 ? INDIRECT_CALL : reg == 4 || reg == 5 ? INDIRECT_JUMP : NOT_BRANCH;
            }
            return op == 0xe9 ? INDIRECT_JUMP : NOT_BRANCH;
        }

        /** The target of a direct call or jump ({@link #branch()} DIRECT_CALL or DIRECT_JUMP). */
        public long branchTarget() {
            int i = opcodeIndex();
            int op = byteAt(i);
            long end = address() + size();
            if (op == 0xeb || op >= 0x70 && op <= 0x7f || op == 0xe3) {
                return end + (byte) byteAt(i + 1);
            }
            return end + int32At(op == 0x0f ? i + 2 : i + 1);
        }

        /** Index of the opcode byte: past the legacy prefixes and a REX prefix. */
        private int opcodeIndex() {
            int n = size();
            int i = 0;
            while (i < n) {
                int b = byteAt(i);
                if (b != 0x66 && b != 0xf0 && b != 0xf2 && b != 0xf3 && b != 0x2e && b != 0x36 && b != 0x3e
                    && b != 0x26 && b != 0x64 && b != 0x65 && b != 0x67 && (b & 0xf0) != 0x40) {
                    break;
                }
                i++;
            }
            return i;
        }

        private boolean hasPrefix(int prefix, int before) {
            for (int k = 0; k < before; k++) {
                if (byteAt(k) == prefix) {
                    return true;
                }
            }
            return false;
        }

        public String mnemonic() {
            return cString(OFF_MNEMONIC, 32);
        }

        public String operands() {
            return cString(OFF_OPERANDS, 160);
        }

        private String cString(int off, int max) {
            int n = 0;
            while (n < max && buf.get(base + off + n) != 0) {
                n++;
            }
            byte[] b = new byte[n];
            buf.get(base + off, b);
            return new String(b, StandardCharsets.US_ASCII);
        }

        /**
         * The registers this instruction writes, explicitly or implicitly, as a {@link Registers} mask of the
         * caller-saved registers. Needs a decoder made with {@code detail = true}.
         */
        public long callerSavedWritten() {
            if (!owner.detail) {
                throw new IllegalStateException("register access needs a detail-mode Decoder");
            }
            long r = Pointer.nativeValue(owner.regs);
            int err = CapstoneDirect.cs_regs_access(owner.handle, nativeInsn, r, r + READ_COUNT, r + REGS_WRITE,
                r + WRITE_COUNT);
            if (err != 0) {
                return Registers.CALLER_SAVED; // unknown: assume the worst
            }
            long mask = 0;
            int written = Byte.toUnsignedInt(owner.regs.getByte(WRITE_COUNT));
            for (int i = 0; i < written; i++) {
                mask |= Registers.maskOf(Short.toUnsignedInt(owner.regs.getShort(REGS_WRITE + 2L * i)));
            }
            return mask;
        }

        @Override
        public String toString() {
            return Long.toHexString(address()) + ": " + mnemonic() + " " + operands();
        }
    }

    /** Receives decoded instructions in address order; returns false to stop decoding. */
    @FunctionalInterface
    public interface Sink {
        boolean accept(Insn insn);
    }

    /** A decoder without detail mode: boundaries, bytes and text only (fast). */
    public Decoder() {
        this(false);
    }

    /** A decoder; with {@code detail}, instructions also report the registers they write (slower). */
    public Decoder(boolean detail) {
        this.detail = detail;
        CapstoneNative cs = library();
        LongByReference h = new LongByReference();
        int err = cs.cs_open(Capstone.CS_ARCH_X86, Capstone.CS_MODE_64, h);
        if (err != 0) {
            throw new IllegalStateException("cs_open(CS_ARCH_X86, CS_MODE_64) failed with error " + err
                + ": this libcapstone has no x86 support");
        }
        handle = h.getValue();
        if (detail && cs.cs_option(handle, Capstone.CS_OPT_DETAIL, Capstone.CS_OPT_ON) != 0) {
            throw new IllegalStateException("cs_option(CS_OPT_DETAIL) failed");
        }
        selfCheck();
    }

    private static CapstoneNative library() {
        CapstoneNative l = lib;
        if (l == null) {
            synchronized (Decoder.class) {
                if (lib == null) {
                    lib = load();
                }
                l = lib;
            }
        }
        return l;
    }

    private static CapstoneNative load() {
        UnsatisfiedLinkError first = null;
        for (String name : new String[] {"capstone", "libcapstone.so.4"}) {
            try {
                CapstoneNative l = Native.load(name, CapstoneNative.class);
                CapstoneDirect.register(com.sun.jna.NativeLibrary.getInstance(name));
                IntByReference major = new IntByReference();
                IntByReference minor = new IntByReference();
                l.cs_version(major, minor);
                if (major.getValue() != 4) {
                    throw new IllegalStateException("libcapstone " + major.getValue() + "." + minor.getValue()
                        + " found; hpvm needs Capstone 4 (Debian: apt-get install -y libcapstone4)");
                }
                return l;
            } catch (UnsatisfiedLinkError e) {
                first = first == null ? e : first;
            }
        }
        throw new IllegalStateException("Capstone is not installed (libcapstone.so.4 not found). Install it with: "
            + "apt-get install -y libcapstone4", first);
    }

    /** Guards the hard-coded struct offsets: nop; call rel32 must decode as two instructions at known addresses. */
    private void selfCheck() {
        byte[] code = {(byte) 0x90, (byte) 0xe8, 1, 0, 0, 0};
        Memory m = new Memory(code.length);
        m.write(0, code, 0, code.length);
        long[] seen = new long[4];
        int[] n = {0};
        decode(m, code.length, 0x1000, insn -> {
            seen[n[0] * 2] = insn.address();
            seen[n[0] * 2 + 1] = insn.size() | ((long) insn.byteAt(0) << 8);
            n[0]++;
            return n[0] < 2;
        });
        if (n[0] != 2 || seen[0] != 0x1000 || seen[1] != (1 | 0x90 << 8) || seen[2] != 0x1001
            || seen[3] != (5 | 0xe8 << 8)) {
            throw new IllegalStateException("libcapstone's cs_insn layout is not the Capstone 4 layout hpvm expects");
        }
    }

    /**
     * Decodes {@code length} bytes at {@code code}, which live at {@code address} in the target.
     *
     * @return the number of bytes decoded: less than {@code length} when an undecodable byte sequence was reached or
     * the sink stopped
     */
    public long decode(Pointer code, long length, long address, Sink sink) {
        library();
        if (detail) {
            return decodeEach(code, length, address, sink);
        }
        Insn insn = new Insn();
        insn.owner = this;
        long done = 0;
        long base = Pointer.nativeValue(code);
        long[] out = new long[1];
        while (done < length) {
            long count = CapstoneDirect.cs_disasm(handle, base + done, length - done, address + done, BATCH, out);
            if (count <= 0) {
                return done;
            }
            Pointer p = new Pointer(out[0]);
            try {
                insn.buf = p.getByteBuffer(0, count * INSN_SIZE).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < count; i++) {
                    insn.base = i * INSN_SIZE;
                    insn.nativeInsn = out[0] + (long) i * INSN_SIZE;
                    int size = insn.size();
                    if (!sink.accept(insn)) {
                        return done + size;
                    }
                    done += size;
                }
            } finally {
                CapstoneDirect.cs_free(out[0], count);
            }
        }
        return done;
    }

    /**
     * Detail mode decodes one instruction at a time into one {@code cs_insn} made by {@code cs_malloc}
     * ({@code cs_disasm_iter}): {@code cs_disasm} would malloc a detail block per instruction and free the batch, and
     * the heap growing and shrinking by megabytes each batch cost more in page faults than the decoding itself.
     */
    private long decodeEach(Pointer code, long length, long address, Sink sink) {
        long one = CapstoneDirect.cs_malloc(handle);
        if (one == 0) {
            throw new IllegalStateException("cs_malloc failed: out of memory");
        }
        try (Memory cursor = new Memory(24)) {
            long at = Pointer.nativeValue(cursor);
            cursor.setLong(0, Pointer.nativeValue(code));
            cursor.setLong(8, length);
            cursor.setLong(16, address);
            Insn insn = new Insn();
            insn.owner = this;
            insn.buf = new Pointer(one).getByteBuffer(0, INSN_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            insn.base = 0;
            insn.nativeInsn = one;
            long done = 0;
            while (done < length && CapstoneDirect.cs_disasm_iter(handle, at, at + 8, at + 16, one)) {
                int size = insn.size();
                if (!sink.accept(insn)) {
                    return done + size;
                }
                done += size;
            }
            return done;
        } finally {
            CapstoneDirect.cs_free(one, 1);
        }
    }

    /** Decodes a byte array; see {@link #decode(Pointer, long, long, Sink)}. */
    public long decode(byte[] code, long address, Sink sink) {
        if (code.length == 0) {
            return 0;
        }
        Memory m = new Memory(code.length);
        m.write(0, code, 0, code.length);
        return decode(m, code.length, address, sink);
    }

    @Override
    public void close() {
        library().cs_close(new LongByReference(handle));
    }

    /**
     * Runs {@code work(decoders.get(i), i)} for every {@code i < n}, the first on the calling thread and each other on
     * a thread of its own (a Capstone handle must not be shared between threads), and returns when all are done;
     * the first failure is thrown again here.
     */
    public static void inParallel(java.util.List<Decoder> decoders, int n, java.util.function.ObjIntConsumer<Decoder> work) {
        if (n > decoders.size()) {
            throw new IllegalArgumentException(n + " shares of work for " + decoders.size() + " decoders");
        }
        Throwable[] failed = new Throwable[n];
        java.util.List<Thread> threads = new java.util.ArrayList<>();
        for (int i = 1; i < n; i++) {
            int share = i;
            Thread t = new Thread(() -> {
                try {
                    work.accept(decoders.get(share), share);
                } catch (Throwable e) {
                    failed[share] = e;
                }
            }, "hpvm-decode-" + i);
            t.start();
            threads.add(t);
        }
        if (n > 0) {
            work.accept(decoders.get(0), 0);
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while decoding on " + n + " threads", e);
            }
        }
        for (Throwable f : failed) {
            if (f instanceof RuntimeException e) {
                throw e;
            } else if (f instanceof Error e) {
                throw e;
            } else if (f != null) {
                throw new IllegalStateException(f);
            }
        }
    }
}
