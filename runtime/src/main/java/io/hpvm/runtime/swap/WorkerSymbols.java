package io.hpvm.runtime.swap;

import io.hpvm.loader.Elf;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.Symbol;
import io.hpvm.loader.SymbolResolver;
import io.hpvm.runtime.linux.ProcFs;
import io.hpvm.runtime.linux.SystemException;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionInfo;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * What a name means inside a running worker, in the order a patch's references resolve: the stub of a patchable
 * function (so patched code always calls current versions), another symbol of the executable (globals first; a
 * local name only when it is unique), then a symbol exported by a shared library the worker has mapped (in the
 * order of {@code /proc/PID/maps}).
 */
public final class WorkerSymbols implements SymbolResolver {

    private final Registry registry;
    private final int pid;
    private final Map<String, List<Symbol>> exeSymbols = new HashMap<>();
    private final long exeBias;
    private final Path exePath;
    private final ElfImage exe;
    private final List<Path> libraries = new ArrayList<>();
    private final Map<Path, Long> libraryStart = new LinkedHashMap<>();
    private final Map<Path, Long> libraryBias = new HashMap<>();
    private final Map<Path, Map<String, Symbol>> libraryExports = new HashMap<>();
    private final TreeSet<String> ambiguous = new TreeSet<>();

    /**
     * The worker's executable, read through {@code /proc/PID/exe}, with the symbols of the separate debug file its
     * session was launched with, if any ({@link SessionInfo#symbols}): a stripped program's statics bind as they do
     * in an unstripped one.
     */
    static ElfImage executable(int pid, SessionInfo info) throws LoadException {
        ElfImage exe = ElfImage.read(Path.of("/proc/" + pid + "/exe"));
        return info.symbols().isEmpty() ? exe : exe.withSymbolsOf(ElfImage.read(Path.of(info.symbols())));
    }

    public WorkerSymbols(Registry registry, int pid, long exeBias) throws SystemException, LoadException {
        this.registry = registry;
        this.pid = pid;
        this.exeBias = exeBias;
        this.exePath = Path.of("/proc/" + pid + "/exe");
        this.exe = executable(pid, registry.session());
        for (Symbol s : exe.symbols()) {
            if (s.isDefined() && !s.name().isEmpty() && s.type() != Elf.STT_SECTION && s.type() != Elf.STT_FILE
                && s.sectionIndex() != Elf.SHN_ABS && s.type() != Elf.STT_TLS) {
                exeSymbols.computeIfAbsent(s.name(), k -> new ArrayList<>()).add(s);
            }
        }
        String exeTarget = readLink(exePath);
        for (ProcFs.Mapping m : ProcFs.maps(pid)) {
            if (m.offset() == 0 && m.path().startsWith("/") && !m.path().equals(exeTarget)
                && !m.path().startsWith("/dev/") && !libraryStart.containsKey(Path.of(m.path()))) {
                libraryStart.put(Path.of(m.path()), m.start());
                libraries.add(Path.of(m.path()));
            }
        }
    }

    private static String readLink(Path p) {
        try {
            return p.toRealPath().toString();
        } catch (java.io.IOException e) {
            return "";
        }
    }

    @Override
    public Resolution resolve(String name, Symbol use) {
        FunctionRecord f = registry.function(name);
        if (f != null) {
            return new Resolution(f.stub(), "stub of " + name);
        }
        List<Symbol> candidates = exeSymbols.get(name);
        if (candidates != null) {
            Symbol global = null;
            List<Symbol> locals = new ArrayList<>();
            for (Symbol s : candidates) {
                if (!s.isLocal()) {
                    global = global == null ? s : global;
                } else {
                    locals.add(s);
                }
            }
            if (global != null) {
                return new Resolution(exeBias + global.value(), "worker executable");
            }
            if (locals.size() == 1) {
                return new Resolution(exeBias + locals.get(0).value(), "worker executable (static in "
                    + locals.get(0).file() + ")");
            }
            // A file-local name defined in several source files: the one from the patch's own source file.
            if (use != null && use.isLocal() && use.file() != null) {
                String file = baseName(use.file());
                List<Symbol> same = locals.stream().filter(l -> l.file() != null && baseName(l.file()).equals(file))
                    .toList();
                if (same.size() == 1) {
                    return new Resolution(exeBias + same.get(0).value(), "worker executable (static in " + file
                        + ")");
                }
            }
            ambiguous.add(name + " (" + locals.size() + " file-local definitions)");
            return null;
        }
        for (Path lib : libraries) {
            Symbol s = exports(lib).get(name);
            if (s != null) {
                if (s.type() == Elf.STT_GNU_IFUNC) {
                    return resolveIfunc(lib, name);
                }
                return new Resolution(libraryBias.get(lib) + s.value(), lib.getFileName().toString());
            }
        }
        return null;
    }

    /**
     * An IFUNC ({@code memcpy}, {@code strlen}, ...) names a resolver that picks an implementation for this CPU, not
     * the implementation. hpvm runs on the same machine and maps the same library file, so it asks its own dynamic
     * linker (dlsym runs the resolver) and moves the answer from its own load address to the worker's.
     */
    private Resolution resolveIfunc(Path lib, String name) {
        try {
            String real = lib.toRealPath().toString();
            long ours = com.sun.jna.Pointer.nativeValue(
                com.sun.jna.NativeLibrary.getInstance(real).getGlobalVariableAddress(name));
            // The mapping of the library's file that holds the answer here, and the worker's mapping of the same
            // file offset. (Match by offset, not by "offset 0": this JVM may also map the file to read its ELF.)
            ProcFs.Mapping here = null;
            for (ProcFs.Mapping m : ProcFs.maps(io.hpvm.runtime.linux.LibC.INSTANCE.getpid())) {
                if (m.path().equals(real) && ours >= m.start() && ours < m.end()) {
                    here = m;
                }
            }
            if (here != null) {
                for (ProcFs.Mapping m : ProcFs.maps(pid)) {
                    if (m.path().equals(lib.toString()) && m.offset() == here.offset()
                        && m.end() - m.start() == here.end() - here.start()) {
                        return new Resolution(ours - here.start() + m.start(), lib.getFileName() + " (IFUNC resolved)");
                    }
                }
            }
            ambiguous.add(name + " (an IFUNC in " + lib + " that hpvm cannot resolve for the worker)");
            return null;
        } catch (java.io.IOException | SystemException | RuntimeException e) {
            ambiguous.add(name + " (IFUNC in " + lib + ": " + e.getMessage() + ")");
            return null;
        }
    }

    /**
     * Thread-local variables of the executable (module 1 of static TLS). On x86-64 (TLS variant II) its block ends
     * at the thread pointer: a variable at offset v of a PT_TLS segment of size m and alignment a lives at
     * %fs:(v - roundup(m, a)), in every thread. Libraries' TLS offsets depend on the load order and are not
     * resolved.
     */
    @Override
    public Long threadPointerOffset(String name, Symbol use) {
        io.hpvm.loader.Segment tls = exe.tlsSegment();
        Symbol s = tlsSymbol(name, use);
        if (s == null) {
            return null;
        }
        long align = Math.max(1, tls.align());
        long blockSize = (tls.memSize() + align - 1) / align * align;
        long firstByte = -tls.vaddr() & (align - 1);
        return s.value() - blockSize - firstByte;
    }

    /**
     * The executable's GOT slot for a shared library's thread-local {@code name}: an {@code R_X86_64_TPOFF64}
     * dynamic relocation, which the dynamic linker filled with the variable's offset from the thread pointer (the
     * same in every thread: the library's TLS is in the static TLS block).
     */
    @Override
    public Long tpoffSlot(String name) {
        for (ElfImage.DynamicRelocation d : exe.dynamicRelocations()) {
            if (d.type() == R_X86_64_TPOFF64 && d.symbol().equals(name)) {
                return exeBias + d.offset();
            }
        }
        return null;
    }

    private static final int R_X86_64_TPOFF64 = 18;

    /** The executable is always TLS module 1 (glibc gives the main program the first module id). */
    @Override
    public Long moduleTlsOffset(String name, Symbol use) {
        Symbol s = tlsSymbol(name, use);
        return s == null ? null : s.value();
    }

    /** The executable's thread-local variable {@code name} (for a local, the one of the same source file). */
    private Symbol tlsSymbol(String name, Symbol use) {
        if (exe.tlsSegment() == null) {
            return null;
        }
        for (Symbol s : exe.symbols()) {
            if (s.type() == Elf.STT_TLS && s.isDefined() && s.name().equals(name)
                && (!s.isLocal() || use == null || use.file() == null || s.file() == null
                || baseName(s.file()).equals(baseName(use.file())))) {
                return s;
            }
        }
        return null;
    }

    /**
     * True when the worker can unwind through code it did not load itself: libgcc_s is mapped (C++ programs, or
     * anything that unwinds), or the executable has an unwinder linked in. Cheap: no library is parsed.
     */
    public boolean hasUnwinder() {
        List<Symbol> own = exeSymbols.get("__register_frame_info");
        return hasUnwinder(libraries, own != null && !own.isEmpty());
    }

    /**
     * The rule of {@link #hasUnwinder()} for a worker whose mapped libraries are {@code libraries} and whose
     * executable does or does not define {@code __register_frame_info} (launch asks before any registry exists).
     */
    public static boolean hasUnwinder(Iterable<Path> libraries, boolean executableDefinesIt) {
        for (Path lib : libraries) {
            Path name = lib.getFileName();
            if (name != null && name.toString().startsWith("libgcc_s")) {
                return true;
            }
        }
        return executableDefinesIt;
    }

    /** The worker's executable, as read through /proc/PID/exe. */
    public ElfImage executable() {
        return exe;
    }

    /** Run-time minus link-time addresses of the executable. */
    public long executableBias() {
        return exeBias;
    }

    private static String baseName(String file) {
        return file.substring(file.lastIndexOf('/') + 1);
    }

    /** Names that could not be resolved with certainty (several file-local definitions, unresolvable IFUNCs). */
    public TreeSet<String> ambiguous() {
        return ambiguous;
    }

    private Map<String, Symbol> exports(Path lib) {
        return libraryExports.computeIfAbsent(lib, p -> {
            Map<String, Symbol> m = new HashMap<>();
            try {
                ElfImage img = ElfImage.read(p);
                libraryBias.put(p, libraryStart.get(p) - img.lowestLoadAddress());
                for (Symbol s : img.exportedSymbols()) {
                    if (s.type() == Elf.STT_TLS) {
                        continue;
                    }
                    Symbol prev = m.get(s.name());
                    if (prev == null || prev.bind() == Elf.STB_WEAK && s.bind() == Elf.STB_GLOBAL) {
                        m.put(s.name(), s);
                    }
                }
            } catch (LoadException e) {
                // not an ELF file we can read (e.g. a mapped data file): contributes no symbols
            }
            return m;
        });
    }
}
