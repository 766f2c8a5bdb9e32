package io.hpvm.runtime.profile;

import io.hpvm.asm.Relocator;
import io.hpvm.asm.Snippets;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SlotTable;
import io.hpvm.runtime.session.VersionRecord;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Which patchable function an instruction address belongs to, and whether it is dispatch code: the function's
 * original body, each of its versions, and what routing adds in front of them (its stub, the trampoline holding its
 * relocated first instructions, the register-preserving thunk of its current version). Samples in dispatch code are
 * what compaction gives back.
 */
public final class CodeMap {

    /** How many bytes a thunk is taken to span (it is a few dozen; the next range start cuts it shorter). */
    private static final int THUNK_SPAN = 256;

    /** {@code what} names the code: "" for the function's original body, else "stub", "entry", "v2", "v2 thunk". */
    private record Range(long end, int function, boolean dispatch, String what) {
    }

    /**
     * A piece of code routing added, as a profiler names it: {@code name} is the function's and what the piece is,
     * {@code "fee [hpvm v2]"}.
     */
    public record Named(long start, long end, String name) {
    }

    /**
     * Where an address lies.
     *
     * @param function its index in {@link #functions()}
     * @param dispatch true in a stub, trampoline or thunk
     */
    public record Place(int function, boolean dispatch) {
    }

    private final List<FunctionRecord> functions;
    private final TreeMap<Long, Range> ranges = new TreeMap<>();

    private CodeMap(List<FunctionRecord> functions) {
        this.functions = functions;
    }

    /** The map of the functions of {@code session} now, every version included. */
    public static CodeMap of(SessionDir session) throws SystemException {
        try (Registry reg = session.openRegistry(); SlotTable slots = SlotTable.open(session.slots())) {
            return of(reg, slots);
        } catch (java.io.IOException e) {
            throw SystemException.io("the slot table of session " + session.dir(), e);
        }
    }

    /** The map of the functions in {@code reg} now, every version included. */
    public static CodeMap of(Registry reg, SlotTable slots) {
        CodeMap m = new CodeMap(reg.functions());
        for (int i = 0; i < m.functions.size(); i++) {
            FunctionRecord fn = m.functions.get(i);
            m.add(fn.address(), fn.size(), i, false, "");
            m.add(fn.stub(), Snippets.STUB_STRIDE, i, true, "stub");
            if (fn.trampoline() != 0) {
                m.add(fn.trampoline(), Relocator.MAX_TRAMPOLINE, i, true, "v0 entry");
            }
            long versionEntry = 0;
            for (int v = 1; v < fn.versions(); v++) {
                VersionRecord r = reg.version(fn.name(), v);
                if (r != null) {
                    m.add(r.address(), Math.max(1, r.size()), i, false, "v" + v);
                    if (v == fn.current()) {
                        versionEntry = r.address();
                    }
                }
            }
            long slot = slots.get(fn.slot());
            if (fn.current() != 0 && slot != versionEntry) {
                m.add(slot, THUNK_SPAN, i, true, "v" + fn.current() + " thunk");
            }
        }
        // A range ends where the next begins (a patch set's first member carries the whole image's size).
        Map.Entry<Long, Range> prev = null;
        for (Map.Entry<Long, Range> e : m.ranges.entrySet()) {
            if (prev != null && prev.getValue().end() > e.getKey()) {
                Range p = prev.getValue();
                prev.setValue(new Range(e.getKey(), p.function(), p.dispatch(), p.what()));
            }
            prev = e;
        }
        return m;
    }

    private void add(long start, long size, int function, boolean dispatch, String what) {
        if (start != 0 && size > 0) {
            ranges.merge(start, new Range(start + size, function, dispatch, what), (old, nu) -> old);
        }
    }

    /** Every piece of code routing added (all but the original bodies), in address order. */
    public List<Named> added() {
        List<Named> out = new java.util.ArrayList<>();
        for (Map.Entry<Long, Range> e : ranges.entrySet()) {
            Range r = e.getValue();
            if (!r.what().isEmpty()) {
                String name = functions.get(r.function()).name();
                out.add(new Named(e.getKey(), r.end(), name + " [hpvm " + r.what() + "]"));
            }
        }
        return out;
    }

    /** The function {@code ip} belongs to and whether it is dispatch code, or null outside every function. */
    public Place at(long ip) {
        Map.Entry<Long, Range> e = ranges.floorEntry(ip);
        return e != null && ip < e.getValue().end() ? new Place(e.getValue().function(), e.getValue().dispatch())
            : null;
    }

    public List<FunctionRecord> functions() {
        return functions;
    }
}
