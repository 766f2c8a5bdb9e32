package io.hpvm.runtime.session;

import io.hpvm.runtime.linux.SystemException;
import net.openhft.chronicle.map.ChronicleMap;

import java.io.File;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The session registry: a persisted Chronicle Map in the session directory shared by the supervisor and every
 * {@code hpvm} command. Keys: {@code session} (metadata), {@code f:NAME} (function records), {@code v:NAME:N}
 * (version history). Values are {@link Fields}-encoded strings, which keeps the map free of generated value
 * classes (the slow part of opening a Chronicle Map). Mutations happen under the session lock.
 */
public final class Registry implements AutoCloseable {

    private static final String SESSION = "session";

    private final ChronicleMap<String, String> map;

    private Registry(ChronicleMap<String, String> map) {
        this.map = map;
    }

    /**
     * Creates the registry for a session of {@code functions} patchable functions at {@code file};
     * {@code shownAs} names it in messages.
     */
    public static Registry create(File file, int functions, Path shownAs) throws SystemException {
        return new Registry(build(file, functions, true, shownAs));
    }

    /** Creates a registry (not a session's: the warm-up uses one). */
    public static Registry create(File file, int functions) throws SystemException {
        return create(file, functions, file.toPath());
    }

    /**
     * Loads and compiles Chronicle Map's code by making and dropping a small map in memory: in a new JVM that takes
     * most of a second, which {@code hpvm run} spends beside its other start-up work instead of while the worker
     * waits for its registry.
     */
    public static void warmUp() {
        try {
            ChronicleMap<String, String> m = ChronicleMap.of(String.class, String.class).name("hpvm-warm-up")
                .entries(64).averageKeySize(40).averageValueSize(140).checksumEntries(false).create();
            m.put("f:warm", "up");
            m.close();
        } catch (RuntimeException ignored) {
            // only a warm-up: the real registry reports its own errors
        }
    }

    /** Opens an existing registry. */
    public static Registry open(File file, Path shownAs) throws SystemException {
        if (!file.isFile()) {
            throw new SystemException("registry " + shownAs + " does not exist (the session is still starting, or its "
                + "supervisor failed to create it)");
        }
        return new Registry(build(file, 1, false, shownAs));
    }

    /** Opens an existing registry, named by its own path. */
    public static Registry open(File file) throws SystemException {
        return open(file, file.toPath());
    }

    private static ChronicleMap<String, String> build(File file, int functions, boolean create, Path shownAs)
        throws SystemException {
        // Entries: a record per function, plus room for version history; the map may grow to 4x that.
        long entries = 2L * functions + 16384;
        try {
            return ChronicleMap.of(String.class, String.class)
                .name("hpvm-registry")
                .entries(entries)
                .averageKeySize(40)
                .averageValueSize(140)
                .maxBloatFactor(4.0)
                .checksumEntries(false)
                .createPersistedTo(file);
        } catch (IOException | RuntimeException e) {
            throw new SystemException((create ? "create" : "open") + " registry " + shownAs + ": " + (e.getMessage()
                == null ? e.getClass().getSimpleName() : e.getMessage()), e);
        }
    }

    public SessionInfo session() throws SystemException {
        String s = map.get(SESSION);
        if (s == null) {
            throw new SystemException("registry has no session record (the session is still starting)");
        }
        return SessionInfo.decode(s);
    }

    public void putSession(SessionInfo info) {
        map.put(SESSION, info.encode());
    }

    public FunctionRecord function(String name) {
        String s = map.get("f:" + name);
        return s == null ? null : FunctionRecord.decode(name, s);
    }

    public void putFunction(FunctionRecord f) {
        map.put("f:" + f.name(), f.encode());
    }

    /** Every function record, in no particular order. */
    public List<FunctionRecord> functions() {
        List<FunctionRecord> out = new ArrayList<>();
        map.forEach((k, v) -> {
            if (k.startsWith("f:")) {
                out.add(FunctionRecord.decode(k.substring(2), v));
            }
        });
        return out;
    }

    public VersionRecord version(String name, int version) {
        String s = map.get("v:" + name + ":" + version);
        return s == null ? null : VersionRecord.decode(version, s);
    }

    public void putVersion(String name, VersionRecord v) {
        map.put("v:" + name + ":" + v.version(), v.encode());
    }

    @Override
    public void close() {
        map.close();
    }
}
