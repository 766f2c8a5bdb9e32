package io.hpvm.runtime.supervisor;

import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Chooses where the slot table and code region go in the worker: one block {@code [slots][code]} within +-2 GiB
 * of the executable's whole image, so stubs are {@code jmp [rip+disp32]}, every rewritten call is a rel32, and patch
 * code reaches the executable directly. The block goes just below the executable when there is room (PIE: the
 * space below 0x55... is free); otherwise 1 GiB above its end, leaving the {@code brk} heap that grows from the end
 * of the executable room to grow.
 */
final class Placement {

    static final long MIB = 1L << 20;
    static final long GIB = 1L << 30;
    private static final long REACH = 2 * GIB - 16 * MIB;

    private Placement() {
    }

    /** Start address of the block, or throws when no candidate is free and in reach. */
    static long choose(List<ProcFs.Mapping> maps, long exeLo, long exeHi, long blockSize) throws SystemException {
        long minAddr = mmapMinAddr();
        long[] candidates = {
            alignDown(exeLo - blockSize - 2 * MIB, 2 * MIB),
            alignUp(exeHi + GIB, 2 * MIB),
            alignUp(exeHi + 256 * MIB, 2 * MIB),
            alignDown(exeLo - blockSize - 256 * MIB, 2 * MIB),
        };
        for (long at : candidates) {
            if (at < minAddr || at + blockSize > 0x7fff_ffff_f000L) {
                continue;
            }
            long lo = Math.min(at, exeLo);
            long hi = Math.max(at + blockSize, exeHi);
            if (hi - lo > REACH) {
                continue;
            }
            boolean free = true;
            for (ProcFs.Mapping m : maps) {
                if (m.start() < at + blockSize && at < m.end()) {
                    free = false;
                    break;
                }
            }
            if (free) {
                return at;
            }
        }
        throw new SystemException("no free address range of " + blockSize + " bytes within 2 GiB of the executable "
            + "(0x" + Long.toHexString(exeLo) + "-0x" + Long.toHexString(exeHi) + "); try a smaller --arena-size");
    }

    private static long mmapMinAddr() {
        try {
            return Long.parseLong(Files.readString(Path.of("/proc/sys/vm/mmap_min_addr")).trim());
        } catch (IOException | RuntimeException e) {
            return 65536;
        }
    }

    static long alignDown(long v, long a) {
        return Math.floorDiv(v, a) * a;
    }

    static long alignUp(long v, long a) {
        return Math.floorDiv(v + a - 1, a) * a;
    }
}
