package io.hpvm.runtime.swap;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SlotTable;
import io.hpvm.runtime.session.VersionRecord;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code hpvm rollback}: undoes the last change to a function. Each function keeps the stack of versions installed
 * in it ({@link FunctionRecord#installed()}): a swap pushes its new version, {@code rollback --to N} pushes N, and a
 * plain rollback pops, returning to whatever ran before the current version was installed. So after swap v1,
 * rollback (v0), swap v2, a rollback returns to v0, the code that ran before v2, never to the v1 the operator had
 * already taken out. Each step is one slot store.
 */
final class Rollback {

    private final SessionDir session;
    private final Registry reg;
    private long quiesceMillis = -1;
    private boolean force;

    Rollback(SessionDir session, Registry reg) {
        this.session = session;
        this.reg = reg;
    }

    /**
     * Rolls back {@code fn}; without {@code to}, when its current version came in a patch set, every member still
     * running its version of that set goes back too (first result: {@code fn}).
     */
    List<SwapEngine.Result> run(FunctionRecord fn, Integer to) throws HpvmException {
        VersionRecord current = fn.current() > 0 ? reg.version(fn.name(), fn.current()) : null;
        String set = to == null && current != null ? current.set() : "";
        List<FunctionRecord> members = new ArrayList<>(List.of(fn));
        if (!set.isEmpty()) {
            for (String member : set.split(",")) {
                FunctionRecord m = member.equals(fn.name()) ? null : reg.function(member);
                VersionRecord mv = m == null || m.current() == 0 ? null : reg.version(member, m.current());
                if (mv != null && set.equals(mv.set())) {
                    members.add(m);
                }
            }
        }
        List<SwapEngine.Result> out = new ArrayList<>();
        if (quiesceMillis < 0) {
            for (int i = 0; i < members.size(); i++) {
                out.add(one(members.get(i), i == 0 ? to : null));
            }
            return out;
        }
        // Compacted members are routed first: that is a stop of its own, which cannot happen inside the quiesced one.
        List<FunctionRecord> compacted = members.stream().filter(FunctionRecord::compacted).toList();
        String routed = compacted.isEmpty() ? "" : "; first " + Compaction.describe(new Compaction(session, reg)
            .apply(compacted, false), false);
        members.replaceAll(m -> reg.function(m.name()));
        Quiesce.Outcome o = Quiesce.run(session, reg, members, quiesceMillis, force, () -> {
            for (int i = 0; i < members.size(); i++) {
                out.add(one(members.get(i), i == 0 ? to : null));
            }
        });
        out.set(0, out.get(0).quiesced(routed, o.describe()));
        return out;
    }

    /** {@code --quiesce}: see {@link SwapEngine#quiesce}. */
    Rollback quiesce(long millis, boolean force) {
        this.quiesceMillis = millis;
        this.force = force;
        return this;
    }

    private SwapEngine.Result one(FunctionRecord fn, Integer to) throws HpvmException {
        long t0 = System.nanoTime();
        String routed = "";
        if (fn.compacted() && (to == null ? fn.previous() >= 0 : to != fn.current() && to >= 0 && to < fn.versions())) {
            routed = "; first " + Compaction.describe(new Compaction(session, reg).apply(List.of(fn), false), false);
            fn = fn.withCompacted(false);
        }
        int target;
        FunctionRecord next;
        String note;
        if (to == null) {
            target = fn.previous();
            if (target < 0) {
                throw new HpvmException(ExitCode.USAGE, fn.name() + " runs v" + fn.current() + (fn.current() == 0
                    ? ", the original code," : "") + " and no change to it is left to undo; 'hpvm rollback " + fn.name()
                    + " --to N' installs version N (0.." + (fn.versions() - 1) + ")");
            }
            next = fn.withLastUndone();
            note = "what ran before v" + fn.current() + ": " + label(fn, target);
        } else {
            target = to;
            if (target < 0 || target >= fn.versions()) {
                throw new HpvmException(ExitCode.USAGE, fn.name() + " has no version " + target + " (versions 0.."
                    + (fn.versions() - 1) + ")");
            }
            if (target == fn.current()) {
                return result(fn, target, SwapEngine.addressOf(reg, fn, target), t0, "already running v" + target
                    + ", " + label(fn, target) + "; nothing changed");
            }
            next = fn.withInstalled(target, fn.versions());
            note = "--to " + target + ": " + label(fn, target) + "; a plain 'hpvm rollback " + fn.name()
                + "' undoes this";
        }
        long address = SwapEngine.addressOf(reg, fn, target);
        try (SlotTable slots = SlotTable.open(session.slots())) {
            slots.setRelease(fn.slot(), address);
        } catch (IOException e) {
            throw SystemException.io("session files in " + session.dir(), e);
        }
        reg.putFunction(next);
        return result(fn, target, address, t0, note + routed);
    }

    private static SwapEngine.Result result(FunctionRecord fn, int target, long address, long t0, String note) {
        return new SwapEngine.Result(fn.name(), fn.current(), target, address, 0, (System.nanoTime() - t0) / 1000,
            fn.entryRedirected(), 0, null, null, "", List.of(), note, "");
    }

    /** "the original code", or where a version came from. */
    private String label(FunctionRecord fn, int version) {
        if (version == 0) {
            return "the original code";
        }
        VersionRecord v = reg.version(fn.name(), version);
        return v == null || v.object().isEmpty() ? "v" + version : "v" + version + " from "
            + Path.of(v.object()).getFileName();
    }
}
