package io.hpvm.loader;

/**
 * Why a frame could not be unwound precisely: no call frame information for its pc, a rule hpvm does not evaluate,
 * or a stack word that could not be read. The unwinder's caller falls back to a cautious method for what is left.
 */
public final class UnwindException extends Exception {

    public UnwindException(String message) {
        super(message);
    }
}
