package io.hpvm.asm;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;

/**
 * The two Capstone calls on the hot path of decoding, bound with JNA direct mapping (static native methods, raw
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
}
