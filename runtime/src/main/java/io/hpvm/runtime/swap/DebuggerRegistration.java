package io.hpvm.runtime.swap;

import io.hpvm.loader.DebugObject;
import io.hpvm.loader.JitDebugLibrary;
import io.hpvm.loader.LoadException;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.CodeRegion;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The swap's passes that show a patch to gdb, where the worker has gdb's JIT interface ({@link JitDebugLibrary},
 * loaded at launch): the object, with its sections' run-time addresses set ({@link DebugObject}), goes into the
 * arena after the image, behind a {@code struct jit_code_entry}, and the entry goes at the head of the list in
 * {@code __jit_debug_descriptor}. gdb attaching to the worker later reads every entry listed, so a backtrace names
 * the patched function and, for an object compiled with {@code -g}, its source file and line. A gdb already attached
 * is told by the supervisor afterwards ({@code ControlServer.tellDebugger}).
 */
final class DebuggerRegistration {

    /** The object is listed only while it takes at most this share of the arena's free space. */
    private static final int ARENA_SHARE = 4;

    private DebuggerRegistration() {
    }

    /** Pass "debug-object", before the space is reserved: makes the copy and places it after the image. */
    static void place(SwapContext c) throws HpvmException {
        if (c.session.debugger() < 0) {
            return;
        }
        byte[] object;
        try {
            object = DebugObject.placed(c.obj.contents(), c.image.sectionAddresses());
        } catch (LoadException e) {
            c.warn(c.functions.get(0).name(), "not shown to gdb: " + c.object + ": " + e.getMessage());
            return;
        }
        long at = (c.end + 15) & ~15L;
        long free = c.info.code() + c.info.codeSize() - at;
        if (object.length + JitDebugLibrary.ENTRY_SIZE > free / ARENA_SHARE) {
            c.warn(c.functions.get(0).name(), "not shown to gdb: the object's " + object.length + " bytes (with its "
                + "debug information) would take more than a " + ARENA_SHARE + "th of the arena's " + Math.max(0, free)
                + " free bytes; start the worker with a larger --arena-size, or compile the patch with less -g");
            return;
        }
        c.debugObject = object;
        c.debugEntry = at;
        c.end = at + JitDebugLibrary.ENTRY_SIZE + object.length;
    }

    /**
     * Pass "debugger", after the store: writes the copy and its entry into the arena and puts the entry at the head
     * of the descriptor's list in every process of the session (a forked child has its own copy of the descriptor).
     */
    static void register(SwapContext c) throws HpvmException {
        if (c.debugObject == null) {
            return;
        }
        long descriptor = c.session.debugger();
        try (CodeRegion code = c.session.openCode(c.info.code())) {
            long symfile = c.debugEntry + JitDebugLibrary.ENTRY_SIZE;
            code.write(symfile, c.debugObject);
            long first;
            try (ProcessMemory mem = new ProcessMemory(c.info.pid(), false)) {
                first = ByteBuffer.wrap(mem.read(descriptor + JitDebugLibrary.FIRST_ENTRY, 8))
                    .order(ByteOrder.LITTLE_ENDIAN).getLong();
            }
            code.write(c.debugEntry, longs(first, 0, symfile, c.debugObject.length));
            if (first != 0) {
                code.write(first + 8, longs(c.debugEntry)); // its prev_entry: every entry is in the arena
            }
            byte[] head = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN).putInt(JitDebugLibrary.JIT_REGISTER_FN)
                .putLong(c.debugEntry).putLong(c.debugEntry).array();
            for (int p : c.session.processes()) {
                try (ProcessMemory mem = new ProcessMemory(p, true)) {
                    mem.write(descriptor + JitDebugLibrary.ACTION_FLAG, head);
                }
            }
        } catch (IOException e) {
            throw SystemException.io("session files in " + c.session.dir(), e);
        }
    }

    private static byte[] longs(long... values) {
        ByteBuffer b = ByteBuffer.allocate(8 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long v : values) {
            b.putLong(v);
        }
        return b.array();
    }
}
