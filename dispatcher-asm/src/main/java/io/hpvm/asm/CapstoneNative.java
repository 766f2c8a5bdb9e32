package io.hpvm.asm;

import com.sun.jna.Library;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.LongByReference;

/**
 * The Capstone 4 entry points hpvm calls off the hot path (open, options, version). The official
 * binding ({@code capstone.Capstone}) reads every instruction reflectively (about 200 us each in detail mode);
 * decoding itself goes through {@link CapstoneDirect} and the raw {@code cs_insn} array (see {@link Decoder}).
 */
interface CapstoneNative extends Library {
    int cs_open(int arch, int mode, LongByReference handle);

    int cs_close(LongByReference handle);

    int cs_errno(long handle);

    int cs_version(IntByReference major, IntByReference minor);

    int cs_option(long handle, int type, long value);

}
