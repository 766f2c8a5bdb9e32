package io.hpvm.loader;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The JIT-interface library and the debug copy of an object, checked with the real dynamic linker and binutils. */
class JitDebugLibraryTest {

    @TempDir
    Path dir;

    @Test
    void theDynamicLinkerLoadsTheLibraryAndFindsBothSymbols() throws Exception {
        Path lib = Files.write(dir.resolve(JitDebugLibrary.SONAME), JitDebugLibrary.bytes());
        Path prog = Gcc.executable(dir, "load", """
            #include <dlfcn.h>
            #include <stdio.h>
            #include <stdint.h>
            struct jit_descriptor { uint32_t version; uint32_t action_flag; void *relevant, *first; };
            int main(int argc, char **argv) {
                void *h = dlopen(argv[1], RTLD_NOW);
                if (!h) { printf("dlopen: %s\\n", dlerror()); return 1; }
                struct jit_descriptor *d = dlsym(h, "__jit_debug_descriptor");
                void (*reg)(void) = (void (*)(void)) dlsym(h, "__jit_debug_register_code");
                if (!d || !reg) { printf("dlsym: %s\\n", dlerror()); return 1; }
                reg();
                printf("version %u flag %u first %p offset %lx\\n", d->version, d->action_flag, d->first,
                       (unsigned long) ((char *) d - (char *) reg));
                return 0;
            }
            """, "-O1");
        String out = Gcc.tool(prog.toString(), lib.toString());
        assertEquals("version 1 flag 0 first (nil) offset "
            + Long.toHexString(JitDebugLibrary.DESCRIPTOR - JitDebugLibrary.REGISTER_CODE) + "\n", out);
        String symbols = Gcc.tool("readelf", "-W", "--dyn-syms", lib.toString());
        assertTrue(symbols.matches("(?s).*FUNC +GLOBAL +DEFAULT +\\d+ __jit_debug_register_code\n.*")
            && symbols.matches("(?s).*24 OBJECT +GLOBAL +DEFAULT +\\d+ __jit_debug_descriptor\n.*"), symbols);
        String headers = Gcc.tool("readelf", "-W", "-l", lib.toString());
        assertTrue(headers.matches("(?s).*GNU_STACK( +0x0+){5} RW .*"), "a non-executable stack:\n" + headers);
    }

    @Test
    void theDebugCopyCarriesTheAddressesOfThePlacedSections() throws Exception {
        Path obj = Gcc.object(dir, "fee", "long fee(long x) { return x * 3; }\nlong other(long x) { return x; }\n",
            "-O1", "-g", "-ffunction-sections");
        byte[] bytes = Files.readAllBytes(obj);
        RelocatableObject o = RelocatableObject.read(obj);
        int text = -1;
        for (Section s : o.sections()) {
            if (s.name().equals(".text.fee")) {
                text = s.index();
            }
        }
        Path placed = Files.write(dir.resolve("placed.o"), DebugObject.placed(bytes, Map.of(text, 0x7f0012345600L)));
        String sections = Gcc.tool("readelf", "-W", "-S", placed.toString());
        assertTrue(sections.matches("(?s).*\\] \\.text\\.fee +PROGBITS +00007f0012345600 .*")
            && sections.matches("(?s).*\\] \\.text\\.other +PROGBITS +0000000000000000 .*"), sections);
        String lines = Gcc.tool("objdump", "--dwarf=decodedline", placed.toString());
        assertTrue(lines.contains("fee.c"), lines);
    }
}
