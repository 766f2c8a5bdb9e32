package io.hpvm.asm;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The stubs launch writes in bulk are byte for byte what linking each one with the loader gives. */
class SnippetsTest {

    @Test
    void bulkStubsAreTheLinkedStubs() throws Exception {
        long stubs = 0x5555_5560_0000L;
        long slots = 0x5555_5540_0000L; // slots below the stubs: negative displacements
        byte[][] bulk = Snippets.stubs(300, i -> stubs + 16L * i, i -> slots + 64 + 8L * i);
        assertEquals(300, bulk.length);
        for (int i = 0; i < 300; i += 37) {
            assertArrayEquals(Snippets.stub(stubs + 16L * i, slots + 64 + 8L * i), bulk[i], "stub " + i);
        }
        assertEquals(0xff, bulk[299][0] & 0xff);
        assertEquals(0x25, bulk[299][1], "jmp qword ptr [rip + disp32]");
    }
}
