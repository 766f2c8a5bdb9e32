package io.hpvm.loader;

/**
 * A failure to read or link an ELF file. The {@link Kind} tells the caller (the CLI) which class of error it is, so
 * it can map it onto a distinct exit code; the message always names the file, section, symbol, address or relocation
 * it is about.
 */
public class LoadException extends Exception {

    /** The class of a loader failure. */
    public enum Kind {
        /** The file is not a well-formed x86-64 ELF file of the expected type. */
        BAD_FILE,
        /** The object is well-formed but cannot be linked: unresolved symbols, unsupported relocations, overflow. */
        LINK,
        /** Linking would break a safety rule (for example new writable data in a patch). */
        REFUSED
    }

    private final Kind kind;

    public LoadException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public LoadException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
