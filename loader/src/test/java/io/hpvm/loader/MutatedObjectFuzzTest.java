package io.hpvm.loader;

import io.hpvm.testing.Fuzz;
import io.hpvm.testing.FuzzCorpus;
import io.hpvm.testing.ObjectMutator;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Thousands of broken variants of real gcc, g++, clang and clang++ objects ({@link ObjectMutator}: bit flips,
 * truncations, corrupted headers, symbols, relocations, strings, contents) go through everything a swap does with
 * an object before touching a worker: reading, linking (every name resolves, so linking goes as deep as it can),
 * comparing with the original ({@code hpvm patch}) and with the executable ({@code --all-changed}). Each must either
 * succeed or fail with hpvm's own {@link LoadException} whose message is one line naming the file, never with a Java
 * exception or its text, and within a bounded time.
 */
class MutatedObjectFuzzTest {

    static final long BASE = 0x5555_0000_0000L;

    private final Map<Path, ElfImage> executables = new HashMap<>();
    private final Map<Path, RelocatableObject> originals = new HashMap<>();

    @Test
    void brokenObjectsAreLinkedOrRefusedWithOneLine() {
        List<FuzzCorpus.Entry> corpus = FuzzCorpus.get();
        Map<String, Integer> outcomes = Fuzz.run("loader fuzz", 6000, 20, seed -> {
            FuzzCorpus.Entry entry = corpus.get(new Random(seed).nextInt(corpus.size()));
            ObjectMutator.Mutant m = new ObjectMutator(entry.bytes()).mutate(seed);
            return exercise(entry, m.bytes(), entry.name() + ", " + m.description());
        });
        assertTrue(outcomes.getOrDefault("linked", 0) > 0 && outcomes.getOrDefault("unreadable", 0) > 0,
            "the mutants reach both the reader's refusals and a finished link: " + outcomes);
    }

    private String exercise(FuzzCorpus.Entry entry, byte[] bytes, String what) throws Exception {
        String name = "mutant.o";
        RelocatableObject obj;
        try {
            obj = RelocatableObject.read(name, bytes);
        } catch (LoadException e) {
            assertRefusal(e, name, what);
            return "unreadable";
        } catch (RuntimeException | StackOverflowError e) {
            throw new AssertionError("reading " + what + " threw " + e, e);
        }
        String outcome = "linked";
        for (String fn : entry.entries()) {
            try {
                LinkedImage img = Linker.link(obj, List.of(fn), RESOLVER, BASE, 64 << 20);
                assertTrue(img.size() <= 64 << 20, "the image fits the room given (" + what + ")");
                assertTrue(img.codeFrom(img.entryAddress()) != null, "the entry is in the code placed (" + what + ")");
            } catch (LoadException e) {
                assertRefusal(e, name, what);
                outcome = "refused by the linker (" + e.kind() + ")";
            } catch (RuntimeException | StackOverflowError e) {
                throw new AssertionError("linking " + fn + " of " + what + " threw " + e, e);
            }
        }
        try {
            ObjectDiff.compare(once(originals, entry.object(), RelocatableObject::read), obj);
            ImageDiff.compare(obj, once(executables, entry.executable(), ElfImage::read));
        } catch (RuntimeException | StackOverflowError e) {
            throw new AssertionError("comparing " + what + " threw " + e, e);
        }
        return outcome;
    }

    /** What a user would read: one line, naming the file, without any of Java's own texts. */
    static void assertRefusal(LoadException e, String file, String what) {
        String msg = e.getMessage();
        assertFalse(msg.contains("\n") || msg.contains("\r"), "one line: " + msg + " (" + what + ")");
        assertTrue(msg.startsWith(file), "the message names the file: " + msg + " (" + what + ")");
        assertFalse(Fuzz.JAVA_TEXT.matcher(msg).find(), "no Java text in: " + msg + " (" + what + ")");
        assertTrue(msg.length() < 2100, "a readable length: " + msg.length() + " (" + what + ")");
    }

    /** Reads each real file once (the corpus' originals and executables are compared with many mutants). */
    private <T> T once(Map<Path, T> cache, Path file, Reader<T> reader) throws LoadException {
        T value = cache.get(file);
        if (value == null) {
            value = reader.read(file);
            cache.put(file, value);
        }
        return value;
    }

    @FunctionalInterface
    private interface Reader<T> {
        T read(Path file) throws LoadException;
    }

    /** Every name resolves (to addresses near the image, or far for some), so linking gets as far as it can. */
    static final SymbolResolver RESOLVER = new SymbolResolver() {
        @Override
        public Resolution resolve(String name, Symbol symbol) {
            long h = name.hashCode() & 0xffffL;
            return new Resolution((h % 3 == 0 ? 0x7f00_0000_0000L : BASE + 0x100_0000L) + h * 16, "test");
        }

        @Override
        public Long threadPointerOffset(String name, Symbol symbol) {
            return -64L;
        }

        @Override
        public Long moduleTlsOffset(String name, Symbol symbol) {
            return 16L;
        }

        @Override
        public Long tpoffSlot(String name) {
            return BASE + 0x200_0000L;
        }
    };
}
