package io.hpvm.runtime.swap;

import io.hpvm.asm.Decoder;
import io.hpvm.asm.Relocator;
import io.hpvm.loader.Elf;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.WorldStop;

/**
 * A function's original first instructions at {@code patchAt}, about to be overwritten with the jump to its stub,
 * and the trampoline holding their copy. Writing the jump while a thread is stopped after the first of them would
 * make it resume in the middle of the jump; such a thread is moved to the same instruction in the trampoline, which
 * runs the rest of them and jumps back after them. Used wherever the jump is written into a running process: when
 * compaction routes a function again, and when {@code hpvm attach} redirects entries.
 *
 * @param function the function's name, for messages
 */
public record DisplacedEntry(String function, long patchAt, byte[] original, long trampoline) {

    /**
     * Whether a thread would resume among them: at its rip, after the first instruction; or, when the kernel
     * restarts the system call it was stopped in, at rip - 2, the {@code syscall} itself, even the first.
     */
    public boolean holds(WorldStop.StoppedThread t) {
        long end = patchAt + original.length;
        return t.restarts() ? t.rip() - 2 >= patchAt && t.rip() - 2 < end : t.rip() > patchAt && t.rip() < end;
    }

    /**
     * Moves {@code t} (which {@link #holds}) to the instruction's copy in the trampoline
     * ({@link Relocator#equivalent}); returns why it could not, or null. Rare, so the decoding is done here, with the
     * world stopped.
     */
    public String moveInto(WorldStop world, WorldStop.StoppedThread t) throws SystemException {
        long to;
        try (ProcessMemory mem = new ProcessMemory(t.pid(), false); Decoder decoder = new Decoder()) {
            to = Relocator.equivalent(decoder, original, patchAt, mem.read(trampoline, Relocator.MAX_TRAMPOLINE),
                trampoline, t.rip());
        }
        if (to < 0) {
            return "thread " + t.tid() + " of pid " + t.pid() + " was stopped at " + Elf.hex(t.rip()) + ", inside "
                + "the first instructions of " + function + " (" + Elf.hex(patchAt) + ".."
                + Elf.hex(patchAt + original.length) + ") but not where one begins";
        }
        world.moveTo(t.tid(), to);
        return null;
    }
}
