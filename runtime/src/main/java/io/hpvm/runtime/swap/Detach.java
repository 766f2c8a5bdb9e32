package io.hpvm.runtime.swap;

import io.hpvm.loader.Elf;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.Injector;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.linux.WorldStop;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionInfo;

import java.util.List;

/**
 * {@code hpvm detach}: gives a process taken over by {@code hpvm attach} back its own code. Every function goes back
 * to version 0 (each a rollback: one slot store), then is compacted at version 0, which writes back the original
 * bytes of every call site and entry ({@link Compaction#restore}: also the calls among an entry's first
 * instructions, which launch had pointed at stubs), with the same thread rules as any compaction. From then
 * on no instruction of the program leads into hpvm's regions; they are unmapped once no thread can still be in them:
 * with the world stopped, no thread's instruction pointer lies in them and no word of the top
 * {@link StackScan#LIMIT} bytes of its stack points into them (a return address into a version or trampoline, a signal
 * frame's saved instruction pointer; a stale word makes it merely cautious). Otherwise they stay mapped, and the
 * result says which thread held them. With {@code keepPatches} every function is compacted at its current version
 * instead (call sites and entries branch straight to it), and the regions stay: the versions live there.
 */
public final class Detach {

    /**
     * What detaching did.
     *
     * @param restored    functions returned to version 0
     * @param compaction  the compaction that wrote the program's own bytes back (or the current versions' branches)
     * @param unmapped    whether hpvm's regions were unmapped
     * @param stillMapped why they were not, or null
     * @param pauseMicros the stop of the world that checked the threads and unmapped (0 when there was none)
     */
    public record Result(int restored, Compaction.Result compaction, boolean unmapped, String stillMapped,
                         long pauseMicros) {
    }

    private Detach() {
    }

    /** Detaches {@code session}'s process; the caller ends the session afterwards. */
    public static Result run(SessionDir session, boolean keepPatches) throws HpvmException {
        try (SessionDir.Lock lock = session.lock(); Registry reg = Registry.open(session.registry().toFile())) {
            SessionInfo info = new SwapEngine(session).checkedSession(reg);
            if (!info.attached()) {
                throw new HpvmException(ExitCode.REFUSED, "process " + info.pid() + " was started by hpvm run, whose "
                    + "supervisor is its parent and stays with it: detach is for processes taken over by hpvm attach "
                    + "(for native code under hpvm run: hpvm rollback --to 0 FUNCTION, then hpvm compact --all)");
            }
            int restored = 0;
            if (!keepPatches) {
                Rollback rollback = new Rollback(session, reg);
                for (FunctionRecord fn : reg.functions()) {
                    if (fn.current() != 0) {
                        rollback.run(reg.function(fn.name()), 0);
                        restored++;
                    }
                }
            }
            Compaction.Result c = new Compaction(session, reg).restore(reg.functions());
            if (keepPatches) {
                return new Result(0, c, false, "the current versions run from them", 0);
            }
            return unmap(session, info, restored, c);
        }
    }

    private static Result unmap(SessionDir session, SessionInfo info, int restored, Compaction.Result c)
        throws HpvmException {
        long lo = info.slots();
        long hi = info.code() + info.codeSize();
        int codeFd = session.codeFd();
        long debugger = session.debugger();
        List<Integer> processes = session.processes(); // before the unmapping, which takes them out of this list
        WorldStop world;
        String busy = null;
        try (StackScan.Stacks stacks = new StackScan.Stacks(processes)) { // read while the threads run
            world = WorldStop.stop(processes);
            try {
                for (WorldStop.StoppedThread t : world.threads()) {
                    busy = busy != null ? busy : holder(t, stacks, lo, hi);
                }
                if (busy == null) {
                    for (int p : processes) {
                        Tracee thread = world.traceeOf(p);
                        if (thread == null) {
                            continue; // ended meanwhile
                        }
                        try (ProcessMemory mem = new ProcessMemory(p, true);
                             Injector inj = new Injector(thread, mem, ProcFs.auxv(p, ProcFs.AT_ENTRY))) {
                            long r = inj.syscall(Injector.SYS_MUNMAP, lo, hi - lo);
                            if (r != 0) {
                                throw SystemException.of("munmap(" + Elf.hex(lo) + ", " + (hi - lo) + ") in process "
                                    + p, (int) -r);
                            }
                            if (codeFd >= 0) {
                                inj.syscall(Injector.SYS_CLOSE, codeFd);
                            }
                            if (debugger >= 0) { // gdb must not look for patches in memory no longer mapped
                                mem.write(debugger + io.hpvm.loader.JitDebugLibrary.ACTION_FLAG, new byte[20]);
                            }
                        }
                    }
                }
            } finally {
                world.close();
            }
        }
        return new Result(restored, c, busy == null, busy, world.micros());
    }

    /** Why thread {@code t} may still need hpvm's regions [lo, hi), or null. */
    private static String holder(WorldStop.StoppedThread t, StackScan.Stacks stacks, long lo, long hi)
        throws SystemException {
        if (t.rip() >= lo && t.rip() < hi) {
            return "thread " + t.tid() + " was running hpvm's code at " + Elf.hex(t.rip());
        }
        StackScan.Hit h = stacks.find(t, w -> w >= lo && w < hi);
        return h == null ? null : "thread " + t.tid() + " has " + Elf.hex(h.word()) + ", an address in hpvm's code, "
            + "on its stack at " + Elf.hex(h.at()) + " (a call into a version or trampoline that has not returned yet)";
    }
}
