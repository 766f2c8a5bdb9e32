package io.hpvm.runtime.swap;

import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.WorldStop;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongPredicate;

/**
 * A conservative look at a stopped thread's stack: the 8-byte words from its stack pointer up (the live frames;
 * below it is dead), at most {@link #LIMIT} bytes, within the mapping that holds the stack pointer. Return addresses
 * are among them, and so are other values; callers that want return addresses check what precedes the word
 * ({@link #afterCall}). It may see a stale word, which only makes its callers cautious (wait longer, keep a region
 * mapped): {@code --quiesce} walks the frames precisely ({@link StackWalk}) and scans only what that walk cannot
 * unwind; {@code detach} scans, as deciding whether to unmap is better cautious.
 */
final class StackScan {

    /** How much of each stack is read, from the stack pointer up. */
    static final int LIMIT = 1 << 20;

    /** A word found: where on the stack, and its value. */
    record Hit(long at, long word) {
    }

    private StackScan() {
    }

    /**
     * Each process's memory maps (where each stack is) and an open {@code /proc/PID/mem}, taken before the world is
     * stopped, so the stop itself is only the reading; a process forked since is taken when first asked for.
     */
    static final class Stacks implements AutoCloseable {
        private final Map<Integer, List<ProcFs.Mapping>> maps = new HashMap<>();
        private final Map<Integer, ProcessMemory> memory = new HashMap<>();

        Stacks(List<Integer> pids) throws SystemException {
            try {
                for (int pid : pids) {
                    add(pid);
                }
            } catch (SystemException | RuntimeException e) {
                close();
                throw e;
            }
        }

        private void add(int pid) throws SystemException {
            maps.put(pid, ProcFs.maps(pid));
            memory.put(pid, new ProcessMemory(pid, false));
        }

        /** The memory maps of process {@code pid}, as read before the stop. */
        List<ProcFs.Mapping> maps(int pid) throws SystemException {
            memory(pid);
            return maps.get(pid);
        }

        /** The memory of process {@code pid}, for reading. */
        ProcessMemory memory(int pid) throws SystemException {
            if (!memory.containsKey(pid)) {
                add(pid);
            }
            return memory.get(pid);
        }

        /** The first word of {@code t}'s stack that {@code wanted} accepts, or null ({@link StackScan#find}). */
        Hit find(WorldStop.StoppedThread t, LongPredicate wanted) throws SystemException {
            return find(t.pid(), t.sp(), wanted);
        }

        /** The first word at or above {@code sp} of process {@code pid}'s stack that {@code wanted} accepts. */
        Hit find(int pid, long sp, LongPredicate wanted) throws SystemException {
            ProcessMemory mem = memory(pid);
            return StackScan.find(mem, maps.get(pid), sp, wanted);
        }

        @Override
        public void close() {
            for (ProcessMemory mem : memory.values()) {
                mem.close();
            }
        }
    }

    /** The first word of the stack at or above {@code stackPointer} that {@code wanted} accepts, or null. */
    static Hit find(ProcessMemory mem, List<ProcFs.Mapping> maps, long stackPointer, LongPredicate wanted)
        throws SystemException {
        long sp = stackPointer & ~7L;
        for (ProcFs.Mapping m : maps) {
            if (sp >= m.start() && sp < m.end()) {
                int length = (int) Math.min(LIMIT, m.end() - sp);
                ByteBuffer stack = ByteBuffer.wrap(mem.read(sp, length)).order(ByteOrder.LITTLE_ENDIAN);
                for (int at = 0; at + 8 <= length; at += 8) {
                    long word = stack.getLong(at);
                    if (wanted.test(word)) {
                        return new Hit(sp + at, word);
                    }
                }
                return null;
            }
        }
        return null;
    }

    /**
     * Whether the instruction that ends at {@code address} can be a call, so that {@code address} can be a return
     * address: {@code call rel32} (e8, 5 bytes), or {@code call} through a register or memory (ff /2: 2, 3, 6 or 7
     * bytes with its ModRM, SIB and displacement; a REX prefix before it changes nothing here).
     */
    static boolean afterCall(ProcessMemory mem, long address) {
        byte[] b;
        try {
            b = mem.read(address - 7, 7);
        } catch (SystemException | RuntimeException e) {
            return false;
        }
        if ((b[2] & 0xff) == 0xe8) {
            return true;
        }
        for (int length : new int[] {2, 3, 6, 7}) {
            int op = 7 - length;
            if ((b[op] & 0xff) == 0xff && ((b[op + 1] >> 3) & 7) == 2) {
                return true;
            }
        }
        return false;
    }
}
