package io.hpvm.runtime.session;

/**
 * A patchable function, stored in the registry under {@code f:NAME}.
 *
 * @param name     its name in the executable (ambiguous local names carry an {@code @0xADDR} suffix)
 * @param slot     its slot index
 * @param address  original entry address (version 0)
 * @param size     original size in bytes
 * @param stub     address of its dispatcher stub
 * @param callSites call sites rewritten to the stub at launch
 * @param current  version the slot holds now
 * @param versions number of versions (0 is the original)
 * @param trampoline address of the trampoline holding its relocated first instructions when its entry jumps to
 *                   the stub (then version 0 runs through it), or 0
 * @param entryNote  why the entry was not redirected ("" when it was)
 */
public record FunctionRecord(String name, int slot, long address, long size, long stub, int callSites, int current,
                             int versions, long trampoline, String entryNote) {

    String encode() {
        return new Fields().put("slot", slot).put("addr", address).put("size", size).put("stub", stub)
            .put("sites", callSites).put("current", current).put("versions", versions).put("tramp", trampoline)
            .put("entry", entryNote).encode();
    }

    static FunctionRecord decode(String name, String s) {
        Fields f = Fields.parse(s);
        return new FunctionRecord(name, f.integer("slot"), f.num("addr"), f.num("size"), f.num("stub"),
            f.integer("sites"), f.integer("current"), f.integer("versions"), f.num("tramp"), f.str("entry"));
    }

    public FunctionRecord withCurrent(int version, int versionCount) {
        return new FunctionRecord(name, slot, address, size, stub, callSites, version, versionCount, trampoline,
            entryNote);
    }

    /** True when every call reaches the slot: the entry itself jumps to the stub. */
    public boolean entryRedirected() {
        return trampoline != 0;
    }

    /** Where version 0 runs: the trampoline when the entry is redirected, else the original entry. */
    public long originalTarget() {
        return trampoline != 0 ? trampoline : address;
    }
}
