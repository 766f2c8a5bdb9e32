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
 */
public record LinkedImage(long base, byte[] bytes, long entryAddress, Map<String, Long> sections,
                          Map<String, SymbolResolver.Resolution> bindings, int gotEntries, int veneers) {

    public int size() {
        return bytes.length;
    }

    /** Included section names, for messages. */
    public List<String> sectionNames() {
        return List.copyOf(sections.keySet());
    }
}
