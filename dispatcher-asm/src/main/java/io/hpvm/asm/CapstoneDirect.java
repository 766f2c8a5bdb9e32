package io.hpvm.asm;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;

/**
 * The Capstone calls on the hot path of decoding, bound with JNA direct mapping (static native methods, raw
 * addresses as {@code long}): an interface-mapped call goes through a reflective proxy, which on the per-function
 * scan of a large program costs as much as the decoding itself.
 */
final class CapstoneDirect {

    private CapstoneDirect() {
    }

    static void register(NativeLibrary library) {
        Native.register(CapstoneDirect.class, library);
    }

    static native long cs_disasm(long handle, long code, long size, long address, long count, long[] insn);

    static native void cs_free(long insn, long count);

    /** {@code cs_malloc}: one {@code cs_insn} (with its detail block) for {@link #cs_disasm_iter}. */
    static native long cs_malloc(long handle);

    /** {@code cs_disasm_iter}: decodes one instruction at {@code *code}, advancing code, size and address. */
    static native boolean cs_disasm_iter(long handle, long code, long size, long address, long insn);

    /** {@code cs_regs_access}: the registers an instruction reads and writes, explicitly or implicitly. */
    static native int cs_regs_access(long handle, long insn, long regsRead, long readCount, long regsWrite,
                                     long writeCount);
}
