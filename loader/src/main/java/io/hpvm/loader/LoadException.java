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
        REFUSED,
        /** The linked image would not fit in the room the caller has for it. */
        TOO_LARGE
    }

    private final Kind kind;

    public LoadException(Kind kind, String message) {
        super(oneLine(message));
        this.kind = kind;
    }

    public LoadException(Kind kind, String message, Throwable cause) {
        super(oneLine(message), cause);
        this.kind = kind;
    }

    /**
     * A message as one printable line: names read from a file may hold any byte, and a newline or escape sequence
     * in a symbol name must not break (or forge) the one-line error a user and their scripts read. Control
     * characters are shown as {@code \\xNN}, and a message is at most {@value #MAX_MESSAGE} characters.
     */
    public static String oneLine(String message) {
        if (message == null) {
            return "";
        }
        StringBuilder b = null;
        for (int i = 0; i < message.length(); i++) {
            char c = message.charAt(i);
            boolean plain = c >= 0x20 && c != 0x7f && !(c >= 0x80 && c < 0xa0) && c != 0x2028 && c != 0x2029
                && c != 0xfffd;
            if (!plain && b == null) {
                b = new StringBuilder(message.length() + 16).append(message, 0, i);
            }
            if (b != null) {
                b.append(plain ? String.valueOf(c) : c < 0x100 ? String.format("\\x%02x", (int) c)
                    : String.format("\\u%04x", (int) c));
            }
        }
        String line = b == null ? message : b.toString();
        return line.length() <= MAX_MESSAGE ? line : line.substring(0, MAX_MESSAGE) + "... (" + (line.length()
            - MAX_MESSAGE) + " more characters)";
    }

    /** Longer messages (a hostile object's megabyte-long symbol name) are cut here. */
    private static final int MAX_MESSAGE = 2000;

    public Kind kind() {
        return kind;
    }
}
