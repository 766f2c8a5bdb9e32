package io.hpvm.runtime.swap;

import io.hpvm.loader.LinkedImage;
import io.hpvm.loader.RelocatableObject;
import io.hpvm.runtime.Timings;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionInfo;
import io.hpvm.runtime.session.UnwindRegistrar;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Everything one swap knows, filled in pass by pass ({@link SwapPasses}): what was asked, what the session and the
 * object hold, what was linked, where it goes and what it needs. A pass reads what earlier passes wrote; a feature
 * that needs a new step adds a pass and, if it must, a field here.
 */
final class SwapContext {

    // What was asked.
    final SessionDir session;
    final List<String> requested;
    final Path object;
    final boolean registerUnwindInfo;
    final UnwindRegistrar registrar;
    final long startNanos = System.nanoTime();
    final Timings timings = new Timings();

    // The session, under its lock.
    Registry registry;
    SessionInfo info;
    RelocatableObject obj;

    /** The registry records of the functions swapped (a patch set when several), in the order asked. */
    final List<FunctionRecord> functions = new ArrayList<>();
    /** Their names in the object ({@code name@0xADDR} suffixes of ambiguous local names removed). */
    final List<String> entries = new ArrayList<>();
    WorkerSymbols symbols;

    /** Where the image goes in the code arena, and the image linked for there. */
    /** {@code --quiesce}: milliseconds to wait for no thread in the old code, or -1; and {@code --force}. */
    long quiesceMillis = -1;
    boolean force;
    /** How the quiesced store went ("" without {@code --quiesce}). */
    String quiesced = "";
    long base;
    LinkedImage image;
    /** Arena bytes used once everything (image and thunks) is written: the new bump pointer. */
    long end;

    /** Per function: what its slot will hold (its entry, or its thunk), and the registers a thunk preserves. */
    long[] targets;
    long[] preserved;
    /** Register-preserving thunks to write: address -> bytes. */
    final Map<Long, byte[]> thunks = new LinkedHashMap<>();
    /** The thunks' unwind tables (registered with the image's). */
    final List<Long> thunkUnwindTables = new ArrayList<>();

    /** The object as gdb reads it, and where its {@code jit_code_entry} goes ({@link DebuggerRegistration}). */
    byte[] debugObject;
    long debugEntry;

    /** Where the code (the image and its thunks) ends: the object for gdb after it is read, never run. */
    long codeEnd() {
        return debugObject != null ? debugEntry : end;
    }

    /** What unwind registration did, for the report ("" when there was nothing to do). */
    String unwind = "";
    /** How compacted functions were returned to routed before the store, for the report ("" when none was). */
    String routed = "";
    /** The version each function got. */
    int[] versions;
    /** Per function name: what the user must know although the swap went through. */
    final Map<String, List<String>> warnings = new LinkedHashMap<>();

    SwapContext(SessionDir session, List<String> requested, Path object, boolean registerUnwindInfo,
                UnwindRegistrar registrar) {
        this.session = session;
        this.requested = List.copyOf(requested);
        this.object = object;
        this.registerUnwindInfo = registerUnwindInfo;
        this.registrar = registrar;
    }

    void warn(String function, String warning) {
        warnings.computeIfAbsent(function, k -> new ArrayList<>()).add(warning);
    }

    /** SHA-256 of the object file, hex. */
    String digest = "";

    /** Set by the already-applied pass: the object already runs in these functions, nothing is to be done. */
    boolean alreadyApplied;

    /** The patch set as version records name it: its members' names, comma-separated ("" for a single function). */
    String setName() {
        return functions.size() > 1 ? String.join(",", functions.stream().map(FunctionRecord::name).toList()) : "";
    }

    /** The object's absolute path, as version records name it. */
    String objectName() {
        return object.toAbsolutePath().toString();
    }
}
