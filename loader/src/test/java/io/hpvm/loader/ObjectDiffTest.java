package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Two compilations of a file, as 'hpvm patch' makes them: only what an edit changes counts. */
class ObjectDiffTest {

    static final String SOURCE = """
        #include <stdio.h>
        static long served;
        int respond(const char *req, char *out, unsigned long n) { return snprintf(out, n, "hello %s (v1)\\n", req); }
        long count(void) { return ++served; }
        const char *name(void) { return "shop"; }
        """;

    @TempDir
    Path dir;

    ObjectDiff.Result diff(String flags, String edited) throws LoadException {
        String[] f = (flags + " -ffunction-sections -fdata-sections").split(" ");
        Path a = Gcc.object(dir, "old", SOURCE, f);
        Path b = Gcc.object(dir, "new", edited, f);
        return ObjectDiff.compare(RelocatableObject.read(a), RelocatableObject.read(b));
    }

    /** A string literal edited: with -g the assembler keeps .LC labels, whose names stay the same. */
    @ParameterizedTest
    @ValueSource(strings = {"-O2", "-O2 -g", "-O0 -g", "-O2 -fPIC -g"})
    void anEditedStringLiteralChangesItsFunction(String flags) throws LoadException {
        ObjectDiff.Result r = diff(flags, SOURCE.replace("(v1)", "(v2, patched)"));
        assertEquals(List.of("respond"), r.changed(), flags);
    }

    @ParameterizedTest
    @ValueSource(strings = {"-O2", "-O2 -g"})
    void nothingEditedNothingChanged(String flags) throws LoadException {
        assertEquals(List.of(), diff(flags, "/* a comment */\n" + SOURCE).changed(), flags);
    }
}
