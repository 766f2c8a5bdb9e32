package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The smallest shared object that gives gdb's JIT interface ("JIT Compilation Interface" in gdb's manual) to a
 * program that has none: {@code void __jit_debug_register_code(void)} (a {@code ret} gdb sets a breakpoint on) and
 * {@code struct jit_descriptor __jit_debug_descriptor = {1, 0, 0, 0}}. gdb looks both up by name in every file
 * loaded in the process, so a process that {@code dlopen}s this file has them; hpvm then lists each patch it loads
 * in the descriptor ({@link DebugObject}), and gdb, on attaching, reads every entry listed.
 *
 * <p>Written here rather than compiled so that hpvm needs no compiler at run time. One page of headers, tables and
 * code (read+exec), one page of dynamic section and data (read+write), and section headers so that gdb (through
 * BFD) finds the symbols; no relocations, no dependencies, a non-executable stack.
 */
public final class JitDebugLibrary {

    /** Where {@code __jit_debug_descriptor} lies from the library's load address. */
    public static final long DESCRIPTOR = 0x1070;
    /** Where {@code __jit_debug_register_code} lies from the library's load address. */
    public static final long REGISTER_CODE = 0x200;
    /** {@code struct jit_descriptor}: version (u32), action_flag (u32), relevant_entry, first_entry. */
    public static final int ACTION_FLAG = 4;
    public static final int RELEVANT_ENTRY = 8;
    public static final int FIRST_ENTRY = 16;
    /** {@code jit_actions_t}. */
    public static final int JIT_REGISTER_FN = 1;
    /** {@code struct jit_code_entry}: next_entry, prev_entry, symfile_addr, symfile_size. */
    public static final int ENTRY_SIZE = 32;

    public static final String SONAME = "libhpvm-gdb-jit.so";

    private static final int PAGE = 0x1000;
    private static final int HASH = 0x120;
    private static final int DYNSYM = 0x140;
    private static final int DYNSTR = 0x188;
    private static final int DYNAMIC = 0x1000;
    private static final int DATA_END = (int) DESCRIPTOR + 24;
    private static final int SHSTRTAB = DATA_END;
    private static final String STRINGS = "\0__jit_debug_register_code\0__jit_debug_descriptor\0" + SONAME + "\0";
    private static final String SECTION_NAMES = "\0.hash\0.dynsym\0.dynstr\0.text\0.dynamic\0.data\0.shstrtab\0";

    private JitDebugLibrary() {
    }

    /** The shared object's bytes (the same every time). */
    public static byte[] bytes() {
        int shoff = align(SHSTRTAB + SECTION_NAMES.length(), 8);
        ByteBuffer b = ByteBuffer.allocate(shoff + 8 * 64).order(ByteOrder.LITTLE_ENDIAN);
        // ELF header
        b.put(new byte[] {0x7f, 'E', 'L', 'F', 2, 1, 1, 0});
        b.position(0x10);
        b.putShort((short) Elf.ET_DYN).putShort((short) Elf.EM_X86_64).putInt(1).putLong(0).putLong(0x40)
            .putLong(shoff).putInt(0).putShort((short) 64).putShort((short) 56).putShort((short) 4)
            .putShort((short) 64).putShort((short) 8).putShort((short) 7);
        // Program headers: text, data, dynamic, stack
        phdr(b, 1, 5, 0, REGISTER_CODE + 1, PAGE);
        phdr(b, 1, 6, DYNAMIC, DATA_END - DYNAMIC, PAGE);
        phdr(b, 2, 6, DYNAMIC, 7 * 16, 8);
        phdr(b, 0x6474e551, 6, 0, 0, 16);
        // .hash: one bucket holding symbol 2, whose chain leads to 1
        b.position(HASH);
        b.putInt(1).putInt(3).putInt(2).putInt(0).putInt(0).putInt(1);
        // .dynsym
        b.position(DYNSYM + 24);
        sym(b, 1, 0x12, 4, REGISTER_CODE, 1);
        sym(b, 1 + "__jit_debug_register_code".length() + 1, 0x11, 6, DESCRIPTOR, 24);
        b.position(DYNSTR);
        b.put(STRINGS.getBytes(StandardCharsets.US_ASCII));
        b.put((int) REGISTER_CODE, (byte) 0xc3);
        // .dynamic
        b.position(DYNAMIC);
        b.putLong(4).putLong(HASH).putLong(5).putLong(DYNSTR).putLong(6).putLong(DYNSYM)
            .putLong(10).putLong(STRINGS.length()).putLong(11).putLong(24)
            .putLong(14).putLong(STRINGS.indexOf(SONAME)).putLong(0).putLong(0);
        b.putInt((int) DESCRIPTOR, 1); // version 1, nothing registered
        b.position(SHSTRTAB);
        b.put(SECTION_NAMES.getBytes(StandardCharsets.US_ASCII));
        // Section headers
        b.position(shoff + 64);
        shdr(b, ".hash", 5, 2, HASH, 24, 2, 0, 8, 4);
        shdr(b, ".dynsym", Elf.SHT_DYNSYM, 2, DYNSYM, 72, 3, 1, 8, 24);
        shdr(b, ".dynstr", 3, 2, DYNSTR, STRINGS.length(), 0, 0, 1, 0);
        shdr(b, ".text", Elf.SHT_PROGBITS, 6, REGISTER_CODE, 1, 0, 0, 16, 0);
        shdr(b, ".dynamic", 6, 3, DYNAMIC, 7 * 16, 3, 0, 8, 16);
        shdr(b, ".data", Elf.SHT_PROGBITS, 3, DESCRIPTOR, 24, 0, 0, 8, 0);
        shdr(b, ".shstrtab", 3, 0, 0, SECTION_NAMES.length(), 0, 0, 1, 0);
        byte[] out = b.array();
        // .shstrtab's offset (it is not loaded: address 0)
        ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).putLong(shoff + 7 * 64 + 24, SHSTRTAB);
        return out;
    }

    private static void phdr(ByteBuffer b, int type, int flags, long at, long size, long align) {
        b.putInt(type).putInt(flags).putLong(at).putLong(at).putLong(at).putLong(size).putLong(size).putLong(align);
    }

    private static void sym(ByteBuffer b, int name, int info, int section, long value, long size) {
        b.putInt(name).put((byte) info).put((byte) 0).putShort((short) section).putLong(value).putLong(size);
    }

    private static void shdr(ByteBuffer b, String name, int type, long flags, long at, long size, int link, int info,
                             long align, long entsize) {
        b.putInt(SECTION_NAMES.indexOf("\0" + name + "\0") + 1).putInt(type).putLong(flags).putLong(at).putLong(at)
            .putLong(size).putInt(link).putInt(info).putLong(align).putLong(entsize);
    }

    private static int align(int v, int a) {
        return (v + a - 1) & -a;
    }
}
