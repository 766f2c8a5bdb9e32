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
    private final short[] regsRead = new short[64];
    private final short[] regsWrite = new short[64];

    /** A decoded instruction, valid only during {@link Sink#accept}. */
    public static final class Insn {
        private ByteBuffer buf;
        private int base;
        private Pointer nativeInsn;
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
            com.sun.jna.ptr.ByteByReference nRead = new com.sun.jna.ptr.ByteByReference();
            com.sun.jna.ptr.ByteByReference nWrite = new com.sun.jna.ptr.ByteByReference();
            int err = library().cs_regs_access(owner.handle, nativeInsn, owner.regsRead, nRead, owner.regsWrite,
                nWrite);
            if (err != 0) {
                return Registers.CALLER_SAVED; // unknown: assume the worst
            }
            long mask = 0;
            for (int i = 0; i < Byte.toUnsignedInt(nWrite.getValue()); i++) {
                mask |= Registers.maskOf(Short.toUnsignedInt(owner.regsWrite[i]));
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
                    insn.nativeInsn = p.share((long) i * INSN_SIZE);
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
}
