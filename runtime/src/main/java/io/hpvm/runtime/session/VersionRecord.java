package io.hpvm.runtime.session;

import java.util.Arrays;
import java.util.List;

/**
 * One version of a function, stored under {@code v:NAME:N}. Version 0 is the original code.
 *
 * @param version number
 * @param address entry address
 * @param size    bytes linked (code, data, GOT and veneers)
 * @param object  the object file it came from ("" for the original)
 * @param created epoch millis
 * @param preserved registers a thunk preserves around it (an io.hpvm.asm.Registers mask; 0 = called directly)
 * @param set       the functions swapped together with it, comma-separated ("" when swapped alone)
 * @param codeStart where the image it came in begins in the arena (its patch set's, thunks included)
 * @param codeEnd   where that image ends: no thread runs its code unless its pc or a return address lies in
 *                  {@code [codeStart, codeEnd)} ({@code hpvm swap --quiesce})
 * @param unwind    where that image's {@code .eh_frame} tables are (the object's, then its thunks'), each ending
 *                  with a zero terminator: what {@code --quiesce} unwinds a thread's frames in the image with
 * @param digest    SHA-256 of the object file, hex ("" for the original): the same object swapped into the same
 *                  functions again is recognised and changes nothing (a fleet tool may apply a patch twice)
 */
public record VersionRecord(int version, long address, long size, String object, long created, long preserved,
                            String set, long codeStart, long codeEnd, List<Long> unwind, String digest) {

    public VersionRecord {
        unwind = List.copyOf(unwind);
    }

    String encode() {
        return new Fields().put("addr", address).put("size", size).put("object", object).put("created", created)
            .put("preserved", preserved).put("set", set).put("cs", codeStart).put("ce", codeEnd)
            .put("eh", String.join(",", unwind.stream().map(Long::toHexString).toList())).put("sha", digest).encode();
    }

    static VersionRecord decode(int version, String s) {
        Fields f = Fields.parse(s);
        return new VersionRecord(version, f.num("addr"), f.num("size"), f.str("object"), f.num("created"),
            f.num("preserved"), f.str("set"), f.num("cs"), f.num("ce"),
            Arrays.stream(f.str("eh").split(",")).filter(x -> !x.isEmpty())
                .map(x -> Long.parseUnsignedLong(x, 16)).toList(), f.str("sha"));
    }
}
