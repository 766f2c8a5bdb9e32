package io.hpvm.loader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;

/**
 * A patch's object file as a debugger reads code that a JIT placed: a copy whose section headers carry the run-time
 * address of each section placed ({@code sh_addr}, 0 in an object file). gdb loads such a copy through its JIT
 * interface like any relocatable object and applies the object's relocations to its DWARF itself, against those
 * addresses, so its symbols and line tables describe the code where it runs (LLVM's MCJIT hands gdb its objects the
 * same way). Sections not placed keep address 0.
 */
public final class DebugObject {

    private static final int E_SHOFF = 0x28;
    private static final int E_SHENTSIZE = 0x3a;
    private static final int E_SHNUM = 0x3c;
    private static final int SH_ADDR = 16;

    private DebugObject() {
    }

    /**
     * The copy of {@code object} (an x86-64 ELF relocatable object, as read for the link) with the addresses of the
     * sections in {@code addresses} (by section index) set.
     */
    public static byte[] placed(byte[] object, Map<Integer, Long> addresses) throws LoadException {
        ByteBuffer b = ByteBuffer.wrap(object.clone()).order(ByteOrder.LITTLE_ENDIAN);
        if (object.length < 64 || b.getShort(0x10) != Elf.ET_REL) {
            throw new LoadException(LoadException.Kind.BAD_FILE, "not an ELF relocatable object");
        }
        long shoff = b.getLong(E_SHOFF);
        int entsize = Short.toUnsignedInt(b.getShort(E_SHENTSIZE));
        int count = Short.toUnsignedInt(b.getShort(E_SHNUM));
        for (Map.Entry<Integer, Long> e : addresses.entrySet()) {
            if (e.getKey() >= count) {
                continue; // made by the link, not the object's (the .eh_frame of the code placed)
            }
            long at = shoff + (long) e.getKey() * entsize + SH_ADDR;
            if (e.getKey() <= 0 || entsize < SH_ADDR + 8 || at + 8 > object.length) {
                throw new LoadException(LoadException.Kind.BAD_FILE, "section " + e.getKey() + " is not in the "
                    + "object's section header table");
            }
            b.putLong((int) at, e.getValue());
        }
        return b.array();
    }
}
