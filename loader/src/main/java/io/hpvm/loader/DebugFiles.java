package io.hpvm.loader;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.zip.CRC32;

/**
 * The separate debug file of a stripped program, found where gdb and perf look (gdb's "Separate Debug Files"):
 * <ol>
 * <li>by build-id: {@code /usr/lib/debug/.build-id/xx/rest.debug} (Debian's {@code -dbgsym} packages put them
 * there), then the debuginfod client's cache ({@code $DEBUGINFOD_CACHE_PATH}, else
 * {@code $XDG_CACHE_HOME/debuginfod_client}, else {@code ~/.cache/debuginfod_client}: {@code BUILDID/debuginfo});</li>
 * <li>by {@code .gnu_debuglink} name: beside the program, in its {@code .debug/} directory, and under
 * {@code /usr/lib/debug} followed by the program's directory.</li>
 * </ol>
 * A file found by build-id must carry the same build-id; one found by its link name, the CRC-32 the link records
 * (and the build-id too, when both files have one). A file that does not match is skipped, and said so when nothing
 * else is found.
 */
public final class DebugFiles {

    /** gdb's default {@code debug-file-directory}. */
    static final Path GLOBAL = Path.of("/usr/lib/debug");

    /**
     * The outcome: the image to read symbols from ({@code image} itself, or with its debug file's symbols), and a
     * phrase for the launch line ("symbols from ... (build-id)", or why none were found).
     */
    public record Found(ElfImage image, String how) {
        /** What a launch line adds about symbols: "; " and {@link #how}, or nothing for the program's own. */
        public String remark() {
            return image.hasSymtab() && image.symbolFile() == null ? "" : "; " + how;
        }
    }

    private DebugFiles() {
    }

    /**
     * {@code image} with the symbols of its debug file when it has no {@code .symtab}: {@code given} when not null
     * ({@code --debug-file}; refused when it does not match), else the first that matches of the places searched.
     * {@code env} gives environment variables ({@code System::getenv}).
     */
    public static Found find(ElfImage image, Path given, UnaryOperator<String> env) throws LoadException {
        if (given != null) {
            ElfImage debug = ElfImage.read(given);
            String wrong = mismatch(image, debug, given, true);
            if (wrong != null) {
                throw new LoadException(LoadException.Kind.REFUSED, "--debug-file " + given + " is not "
                    + image.path() + "'s debug file: " + wrong);
            }
            return withSymbols(image, debug, given, "given");
        }
        if (image.hasSymtab()) {
            return new Found(image, "symbols from the program's own .symtab");
        }
        List<String> skipped = new ArrayList<>();
        for (Map.Entry<Path, Boolean> c : candidates(image, env)) {
            Path file = c.getKey();
            if (!Files.isRegularFile(file)) {
                continue;
            }
            ElfImage debug;
            try {
                debug = ElfImage.read(file);
            } catch (LoadException e) {
                skipped.add(file + " (" + e.getMessage() + ")");
                continue;
            }
            String wrong = mismatch(image, debug, file, !c.getValue());
            if (wrong != null) {
                skipped.add(file + " (" + wrong + ")");
                continue;
            }
            return withSymbols(image, debug, file, c.getValue() ? "build-id" : ".gnu_debuglink");
        }
        return new Found(image, "no .symtab and no debug file found"
            + (skipped.isEmpty() ? "" : "; not matching: " + String.join(", ", skipped))
            + ": only exported functions are patchable (install its -dbgsym package, or give --debug-file)");
    }

    private static Found withSymbols(ElfImage image, ElfImage debug, Path file, String how) {
        if (!debug.hasSymtab()) {
            return new Found(image, file + " has no .symtab either: only exported functions are patchable");
        }
        return new Found(image.withSymbolsOf(debug), "symbols from " + file + " (" + how + ")");
    }

    /** The places to look, each with whether it is a build-id path (else a debuglink one), in gdb's order. */
    static List<Map.Entry<Path, Boolean>> candidates(ElfImage image, UnaryOperator<String> env) {
        List<Map.Entry<Path, Boolean>> out = new ArrayList<>();
        String id = image.buildId();
        if (id.length() > 2) {
            out.add(Map.entry(GLOBAL.resolve(".build-id").resolve(id.substring(0, 2))
                .resolve(id.substring(2) + ".debug"), true));
            out.add(Map.entry(debuginfodCache(env).resolve(id).resolve("debuginfo"), true));
        }
        Map.Entry<String, Long> link = image.debugLink();
        if (link != null && !link.getKey().contains("/")) {
            Path dir = image.path().toAbsolutePath().getParent();
            Path real = dir;
            try {
                real = image.path().toRealPath().getParent();
            } catch (IOException e) {
                // as given
            }
            for (Path d : real.equals(dir) ? List.of(dir) : List.of(real, dir)) {
                out.add(Map.entry(d.resolve(link.getKey()), false));
                out.add(Map.entry(d.resolve(".debug").resolve(link.getKey()), false));
                out.add(Map.entry(Path.of(GLOBAL + d.toString()).resolve(link.getKey()), false));
            }
        }
        return out;
    }

    private static Path debuginfodCache(UnaryOperator<String> env) {
        String cache = env.apply("DEBUGINFOD_CACHE_PATH");
        if (cache != null && !cache.isBlank()) {
            return Path.of(cache);
        }
        String xdg = env.apply("XDG_CACHE_HOME");
        String home = env.apply("HOME");
        return xdg != null && !xdg.isBlank() ? Path.of(xdg, "debuginfod_client")
            : Path.of(home == null ? "/root" : home, ".cache", "debuginfod_client");
    }

    /** Why {@code debug} is not {@code image}'s debug file, or null when it is. */
    static String mismatch(ElfImage image, ElfImage debug, Path file, boolean checkCrc) throws LoadException {
        if (!image.buildId().isEmpty() || !debug.buildId().isEmpty()) {
            if (!image.buildId().equals(debug.buildId())) {
                return "build-id " + (debug.buildId().isEmpty() ? "none" : debug.buildId()) + ", the program's "
                    + (image.buildId().isEmpty() ? "none" : image.buildId());
            }
            return null;
        }
        Map.Entry<String, Long> link = image.debugLink();
        if (checkCrc && link != null) {
            CRC32 crc = new CRC32();
            try {
                crc.update(Files.readAllBytes(file));
            } catch (IOException e) {
                throw new LoadException(LoadException.Kind.BAD_FILE, file + ": " + e.getMessage());
            }
            if (crc.getValue() != link.getValue()) {
                return String.format("CRC-32 %08x, the program's .gnu_debuglink says %08x", crc.getValue(),
                    link.getValue());
            }
            return null;
        }
        return "neither file has a build-id, and the program has no .gnu_debuglink to check it against";
    }
}
