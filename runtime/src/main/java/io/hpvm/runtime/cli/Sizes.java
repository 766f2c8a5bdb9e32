package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;

/** Parses sizes such as {@code 4096}, {@code 64K}, {@code 32M}. */
final class Sizes {
    private Sizes() {
    }

    static long parse(String s, String option) throws HpvmException {
        String t = s.trim().toUpperCase();
        long mult = 1;
        if (t.endsWith("K")) {
            mult = 1024;
        } else if (t.endsWith("M")) {
            mult = 1024 * 1024;
        } else if (t.endsWith("G")) {
            mult = 1024L * 1024 * 1024;
        }
        try {
            long v = Long.parseLong(mult == 1 ? t : t.substring(0, t.length() - 1)) * mult;
            if (v < 4096 || v > 1024L * 1024 * 1024) {
                throw new NumberFormatException();
            }
            return v;
        } catch (NumberFormatException e) {
            throw new HpvmException(ExitCode.USAGE, option + " " + s + ": expected a size between 4K and 1G");
        }
    }
}
