package io.hpvm.runtime.supervisor;

import io.hpvm.asm.Snippets;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LinkedImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.Symbol;
import io.hpvm.runtime.linux.Injector;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.ProcessMemory;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.linux.Tracee;
import io.hpvm.runtime.linux.WorkerAgent;
import io.hpvm.runtime.session.CodeRegion;
import io.hpvm.runtime.swap.WorkerSymbols;

import java.nio.file.Path;
import java.util.List;

/**
 * Starts hpvm's agent thread ({@link WorkerAgent}) in a worker stopped at its entry point. Only where it has work:
 * the worker has an unwinder ({@code libgcc_s} mapped, or {@code __register_frame_info} linked into the executable),
 * so swaps will register unwind information. Everywhere else the program keeps exactly its own threads.
 */
final class AgentLaunch {

    /** Bytes reserved for the agent's code after the call pad. */
    static final int CODE_SPACE = 256;

    private AgentLaunch() {
    }

    /** What happened: the agent, or null and why not (null when there was nothing to start it for). */
    record Result(WorkerAgent agent, String notStarted) {
    }

    static Result start(Tracee tracee, ProcessMemory mem, CodeRegion code, long scratch, long at, ElfImage image,
                        long bias, List<ProcFs.Mapping> maps) {
        if (!hasUnwinder(image, maps)) {
            return new Result(null, null);
        }
        try {
            long pthreadCreate = function(image, bias, maps, "pthread_create");
            if (pthreadCreate == 0) {
                return new Result(null, "the worker has no pthread_create");
            }
            LinkedImage agent = Snippets.agent(at);
            if (agent.size() > CODE_SPACE) {
                throw new IllegalStateException("agent.S grew beyond " + CODE_SPACE + " bytes");
            }
            code.write(at, agent.bytes());
            try (Injector inj = new Injector(tracee, mem, scratch)) {
                return new Result(WorkerAgent.start(inj, mem, tracee.pid(), agent.entryAddress(), pthreadCreate,
                    SharedRegions.highDescriptor(tracee.pid())), null);
            }
        } catch (SystemException | LoadException e) {
            return new Result(null, e.getMessage());
        }
    }

    private static boolean hasUnwinder(ElfImage image, List<ProcFs.Mapping> maps) {
        List<Path> files = new java.util.ArrayList<>();
        for (ProcFs.Mapping m : maps) {
            if (m.path().startsWith("/")) {
                files.add(Path.of(m.path()));
            }
        }
        return WorkerSymbols.hasUnwinder(files, defined(image, "__register_frame_info") != null);
    }

    /** The worker's function {@code name} (of libc): linked into the executable, or exported by its libc; or 0. */
    private static long function(ElfImage image, long bias, List<ProcFs.Mapping> maps, String name) throws LoadException {
        Symbol own = defined(image, name);
        return own != null ? bias + own.value() : libcFunction(maps, name);
    }

    /** Function {@code name} as the libc.so the worker maps exports it, or 0 (a statically linked program). */
    static long libcFunction(List<ProcFs.Mapping> maps, String name) throws LoadException {
        for (ProcFs.Mapping m : maps) {
            Path file = Path.of(m.path()).getFileName();
            if (m.offset() == 0 && m.path().startsWith("/") && file != null
                && file.toString().startsWith("libc.so")) {
                ElfImage libc = ElfImage.read(Path.of(m.path()));
                for (Symbol s : libc.exportedSymbols()) {
                    if (s.name().equals(name)) {
                        return m.start() - libc.lowestLoadAddress() + s.value();
                    }
                }
            }
        }
        return 0;
    }

    private static Symbol defined(ElfImage image, String name) {
        for (Symbol s : image.symbols()) {
            if (s.isDefined() && name.equals(s.name())) {
                return s;
            }
        }
        return null;
    }
}
