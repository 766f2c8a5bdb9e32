package net.openhft.chronicle.values;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * hpvm ships the class chronicle-values would otherwise compile with javac at run time
 * ({@code runtime/src/main/java/net/openhft/chronicle/hash/VanillaGlobalMutableState$$Native.java}); in this package
 * because the generator is package-private.
 */
class VanillaGlobalMutableStateSourceTest {

    static final Path SOURCE = Path.of("src/main/java/net/openhft/chronicle/hash/VanillaGlobalMutableState$$Native.java");

    @Test
    void theCheckedInClassIsWhatTheDependencyWouldGenerate() throws Exception {
        Class<?> state = Class.forName("net.openhft.chronicle.hash.VanillaGlobalMutableState");
        String generated = Generators.generateNativeClass(ValueModel.acquire(state),
            ValueModel.simpleName(state) + ValueModel.$$NATIVE);
        String checkedIn = Files.readString(SOURCE);
        String body = checkedIn.substring(checkedIn.indexOf("package "));
        assertEquals(generated, body, "chronicle-values now generates a different " + SOURCE.getFileName() + ": "
            + "replace everything from its 'package' line on with this test's 'expected' text");
    }

    @Test
    void chronicleUsesTheShippedClassInsteadOfCompilingOne() {
        Class<?> state = ValueModel.acquire(net.openhft.chronicle.hash.VanillaGlobalMutableState.class).nativeClass();
        java.security.CodeSource from = state.getProtectionDomain().getCodeSource();
        // A class chronicle's in-memory compiler defines has no code source; ours comes from runtime/target/classes.
        assertTrue(from != null && from.getLocation().getPath().endsWith("/runtime/target/classes/"),
            "loaded from hpvm's classes, not compiled at run time: " + from);
    }
}
