package io.hpvm.runtime.session;

import java.util.ArrayList;
import java.util.List;

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
 * @param installed  the versions in the order they were installed, the current one last, version 0 first: what a
 *                   plain rollback undoes (it returns to the entry below the top, whatever its number)
 * @param compacted  true when its call sites (and redirected entry) branch straight to the current version instead
 *                   of through the stub ({@code hpvm compact}); a swap or rollback returns it to routed first
 * @param changed   when its slot was last stored by a swap or rollback (epoch millis; 0 = never since launch): what
 *                  "has not changed for a while" means to {@code hpvm compact} without names
 */
public record FunctionRecord(String name, int slot, long address, long size, long stub, int callSites, int current,
                             int versions, long trampoline, String entryNote, List<Integer> installed,
                             boolean compacted, long changed) {

    /** Installations remembered for rollback; older ones (above version 0 at the bottom) are forgotten. */
    public static final int MAX_INSTALLED = 1000;

    public FunctionRecord {
        installed = List.copyOf(installed.isEmpty() ? List.of(0) : installed);
    }

    /** A function as {@code hpvm run} registers it: running version 0. */
    public FunctionRecord(String name, int slot, long address, long size, long stub, int callSites, long trampoline,
                          String entryNote) {
        this(name, slot, address, size, stub, callSites, 0, 1, trampoline, entryNote, List.of(0), false, 0);
    }

    String encode() {
        StringBuilder history = new StringBuilder();
        for (int v : installed) {
            history.append(history.length() == 0 ? "" : ",").append(v);
        }
        return new Fields().put("slot", slot).put("addr", address).put("size", size).put("stub", stub)
            .put("sites", callSites).put("current", current).put("versions", versions).put("tramp", trampoline)
            .put("entry", entryNote).put("installed", history).put("compacted", compacted ? 1 : 0)
            .put("changed", changed).encode();
    }

    static FunctionRecord decode(String name, String s) {
        Fields f = Fields.parse(s);
        int current = f.integer("current");
        List<Integer> installed = new ArrayList<>();
        for (String v : f.str("installed").split(",")) {
            if (!v.isEmpty()) {
                installed.add(Integer.parseInt(v));
            }
        }
        if (installed.isEmpty()) {
            installed.add(0);
            if (current != 0) {
                installed.add(current);
            }
        }
        return new FunctionRecord(name, f.integer("slot"), f.num("addr"), f.num("size"), f.num("stub"),
            f.integer("sites"), current, f.integer("versions"), f.num("tramp"), f.str("entry"), installed,
            f.integer("compacted") == 1, f.num("changed"));
    }

    /** The record after {@code version} was installed (a swap, or a rollback with an explicit target). */
    public FunctionRecord withInstalled(int version, int versionCount) {
        List<Integer> next = new ArrayList<>(installed);
        next.add(version);
        while (next.size() > MAX_INSTALLED) {
            next.remove(1); // the oldest installation above version 0
        }
        return new FunctionRecord(name, slot, address, size, stub, callSites, version, versionCount, trampoline,
            entryNote, next, compacted, System.currentTimeMillis());
    }

    /**
     * What ran before the current version was installed (what a plain rollback returns to), or -1 when nothing did:
     * the function runs the version it started with.
     */
    public int previous() {
        return installed.size() >= 2 ? installed.get(installed.size() - 2) : -1;
    }

    /** The record after the last installation was undone. */
    public FunctionRecord withLastUndone() {
        List<Integer> next = new ArrayList<>(installed.subList(0, Math.max(1, installed.size() - 1)));
        return new FunctionRecord(name, slot, address, size, stub, callSites, next.get(next.size() - 1), versions,
            trampoline, entryNote, next, compacted, System.currentTimeMillis());
    }

    /** The record with its compaction state set. */
    public FunctionRecord withCompacted(boolean on) {
        return new FunctionRecord(name, slot, address, size, stub, callSites, current, versions, trampoline, entryNote,
            installed, on, changed);
    }

    /** "compacted" or "routed", as {@code ls}, {@code top} and {@code --json} name the state. */
    public String state() {
        return compacted ? "compacted" : "routed";
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
