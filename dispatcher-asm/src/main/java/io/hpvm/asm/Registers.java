package io.hpvm.asm;

import capstone.X86_const;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

/**
 * Masks of the System V x86-64 caller-saved registers: bit 0..8 = rax, rcx, rdx, rsi, rdi, r8, r9, r10, r11; bit
 * 9..24 = xmm0..xmm15 (with their ymm/zmm views). Capstone register ids of every sub-register (eax, sil, r8d, ymm3...)
 * map onto the bit of their full register.
 */
public final class Registers {

    public static final String[] NAMES = {"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0",
        "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
        "xmm14", "xmm15"};
    /** Every caller-saved register: what a call to an unknown function may clobber. */
    public static final long CALLER_SAVED = (1L << NAMES.length) - 1;

    private static final long[] MASK_OF_ID = build();

    private Registers() {
    }

    /** The mask bit of a Capstone x86 register id, or 0 for registers that are not caller-saved. */
    public static long maskOf(int capstoneRegister) {
        return capstoneRegister >= 0 && capstoneRegister < MASK_OF_ID.length ? MASK_OF_ID[capstoneRegister] : 0;
    }

    /** "rsi, xmm0" for a mask. */
    public static String describe(long mask) {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < NAMES.length; i++) {
            if ((mask & (1L << i)) != 0) {
                names.add(NAMES[i]);
            }
        }
        return names.isEmpty() ? "none" : String.join(", ", names);
    }

    private static long[] build() {
        long[] out = new long[X86_const.X86_REG_ENDING];
        for (Field f : X86_const.class.getFields()) {
            if (!f.getName().startsWith("X86_REG_") || !Modifier.isStatic(f.getModifiers())
                || f.getType() != int.class) {
                continue;
            }
            int bit = bitOf(f.getName().substring(8));
            if (bit < 0) {
                continue;
            }
            try {
                int id = f.getInt(null);
                if (id >= 0 && id < out.length) {
                    out[id] = 1L << bit;
                }
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
        }
        return out;
    }

    private static int bitOf(String reg) {
        switch (reg) {
            case "RAX": case "EAX": case "AX": case "AH": case "AL": return 0;
            case "RCX": case "ECX": case "CX": case "CH": case "CL": return 1;
            case "RDX": case "EDX": case "DX": case "DH": case "DL": return 2;
            case "RSI": case "ESI": case "SI": case "SIL": return 3;
            case "RDI": case "EDI": case "DI": case "DIL": return 4;
            default:
                break;
        }
        for (int r = 8; r <= 11; r++) {
            String n = "R" + r;
            if (reg.equals(n) || reg.equals(n + "D") || reg.equals(n + "W") || reg.equals(n + "B")) {
                return 5 + (r - 8);
            }
        }
        for (String prefix : new String[] {"XMM", "YMM", "ZMM"}) {
            if (reg.startsWith(prefix)) {
                try {
                    int n = Integer.parseInt(reg.substring(3));
                    return n < 16 ? 9 + n : -1;
                } catch (NumberFormatException e) {
                    return -1;
                }
            }
        }
        return -1;
    }
}
