package io.hpvm.loader;

import java.util.List;
import java.util.Map;

/**
 * The result of linking: bytes to copy to {@code base} in the target, and the address of the linked entry symbol.
 *
 * @param base         run-time address the bytes were linked for
 * @param bytes        the image: code, read-only data, GOT entries, veneers
 * @param entryAddress run-time address of the entry symbol
 * @param sections     the object's sections included (reachable from the entry), with their run-time addresses
 * @param bindings     every external name the image refers to, with where it was resolved
 * @param gotEntries   GOT entries made
 * @param veneers      veneers made for branches to targets beyond +-2 GiB
 * @param code         run-time {@code [start, end)} of each executable section placed
 * @param entries      run-time address of each entry linked (one, or the members of a patch set)
 * @param unwindInfo   run-time address of the image's {@code .eh_frame} (the object's CIEs and the FDEs of the code
 *                     placed, relocated, ending with a zero terminator), for {@code __register_frame_info}; 0 when
 *                     the object has no unwind information for it
 * @param functions    run-time start -> end of each function symbol placed (the object's {@code st_size})
 * @param sectionAddresses run-time address of each of the object's sections placed, by section index (the
 *                     {@code .eh_frame} too): what a debugger needs to read the object's symbols and line tables
 *                     for where its code runs ({@link DebugObject})
 */
public record LinkedImage(long base, byte[] bytes, long entryAddress, Map<String, Long> sections,
                          Map<String, SymbolResolver.Resolution> bindings, int gotEntries, int veneers,
                          List<long[]> code, Map<String, Long> entries, long unwindInfo,
                          Map<Long, Long> functions, Map<Integer, Long> sectionAddresses) {

    /**
     * The code of the function that starts at {@code address} (up to its symbol's end), or, when no function symbol
     * starts there, the bytes from {@code address} to the end of its executable section; null outside the code.
     * Bounded by the function so that analysing every function of an image decodes each byte about once.
     */
    public byte[] codeFrom(long address) {
        for (long[] r : code) {
            if (address >= r[0] && address < r[1]) {
                Long end = functions.get(address);
                long to = end != null && end > address && end <= r[1] ? end : r[1];
                return java.util.Arrays.copyOfRange(bytes, (int) (address - base), (int) (to - base));
            }
        }
        return null;
    }

    public int size() {
        return bytes.length;
    }

    /** Included section names, for messages. */
    public List<String> sectionNames() {
        return List.copyOf(sections.keySet());
    }
}
