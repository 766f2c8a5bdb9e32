package io.hpvm.loader;

/** An SHT_RELA entry: fix up {@code offset} in the section it applies to with {@code S + addend}. */
public record Relocation(long offset, int type, int symbolIndex, long addend) {
}
