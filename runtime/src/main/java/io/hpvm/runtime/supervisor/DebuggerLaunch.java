package io.hpvm.runtime.supervisor;

import io.hpvm.loader.JitDebugLibrary;
import io.hpvm.loader.LoadException;
import io.hpvm.runtime.linux.Injector;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.session.SessionDir;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Gives a worker stopped at its entry point gdb's JIT interface: writes {@link JitDebugLibrary} into the session
 * directory and has the worker {@code dlopen} it (the dynamic linker is done and no code of the program has run, so
 * no lock of the loader can be held), then records where its {@code __jit_debug_descriptor} is. Each swap then lists
 * its patch there ({@code swap/DebuggerRegistration}), and gdb attached to the worker names patched code and its
 * source lines. Not done for {@code hpvm attach} (a stopped thread of a running program may hold the loader's
 * lock), nor for statically linked programs (no {@code dlopen}), nor where the session root is noexec (the library
 * could not be mapped executable).
 */
final class DebuggerLaunch {

    private static final int RTLD_NOW = 2;

    private DebuggerLaunch() {
    }

    /** Loads the library; returns why not, or null when gdb can now find patched code. */
    static String load(Tracee tracee, ProcessMemory mem, long scratch, SessionDir session,
                       List<ProcFs.Mapping> maps) {
        try {
            // libc's, never a statically linked program's own: that one needs the libc initialisation not yet run
            long dlopen = AgentLaunch.libcFunction(maps, "dlopen");
            if (dlopen == 0) {
                return "the program does not map libc.so (statically linked?), whose dlopen would load the library";
            }
            if (session.noexecRoot()) {
                return "the session root is noexec, where the library gdb needs cannot be mapped";
            }
            java.nio.file.Path library = session.debuggerLibrary();
            java.nio.file.Files.write(library, JitDebugLibrary.bytes(), java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE); // never through a link, as every session file
            SessionDir.makePrivate(library);
            String path = session.workerPath(SessionDir.DEBUGGER_LIBRARY).toString();
            try (Injector inj = new Injector(tracee, mem, scratch)) {
                long handle = inj.call(dlopen, inj.pushString(path, 1), RTLD_NOW);
                if (handle == 0) {
                    long dlerror = AgentLaunch.libcFunction(maps, "dlerror");
                    return "dlopen(" + path + ") in the worker failed" + (dlerror == 0 ? ""
                        : ": " + cString(mem, inj.call(dlerror)));
                }
            }
            for (ProcFs.Mapping m : ProcFs.maps(tracee.pid())) {
                if (m.offset() == 0 && m.path().equals(path)) {
                    session.recordDebugger(m.start() + JitDebugLibrary.DESCRIPTOR);
                    return null;
                }
            }
            return path + " is not in the worker's maps after dlopen";
        } catch (SystemException | LoadException | java.io.IOException e) {
            return e.getMessage();
        }
    }

    private static String cString(ProcessMemory mem, long at) {
        if (at == 0) {
            return "(no reason given)";
        }
        try {
            byte[] b = mem.read(at, 256);
            int n = 0;
            while (n < b.length && b[n] != 0) {
                n++;
            }
            return new String(b, 0, n, StandardCharsets.UTF_8);
        } catch (SystemException | RuntimeException e) {
            return "(unreadable reason)";
        }
    }
}
