package io.hpvm.asm;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The relocator on annotated byte arrays, with the trampoline placed below the function as hpvm places it, so
 * rel32 values are realistic.
 */
class RelocatorTest {

    static final long ENTRY = 0x5555_5555_1000L;
    static final long TRAMP = 0x5555_5500_0000L;
    static Decoder decoder;

    @BeforeAll
    static void open() {
        decoder = new Decoder();
    }

    @AfterAll
    static void close() {
        decoder.close();
    }

    static byte[] b(int... v) {
        byte[] out = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (byte) v[i];
        }
        return out;
    }

    static int rel32(byte[] code, int at) {
        return ByteBuffer.wrap(code, at, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
    }

    static Relocator.Plan plan(byte[] code) {
        return Relocator.plan(decoder, code, ENTRY, TRAMP, a -> false);
    }

    @Test
    void prologueIsCopiedAndFollowedByAJumpBack() {
        byte[] code = b(
            0x55,                   // push rbp
            0x48, 0x89, 0xe5,       // mov rbp, rsp
            0x48, 0x83, 0xec, 0x10, // sub rsp, 0x10
            0x31, 0xc0,             // xor eax, eax
            0xc9, 0xc3);            // leave; ret
        Relocator.Plan p = plan(code);
        assertTrue(p.isValid(), p.refusal());
        assertEquals(ENTRY, p.patchAt());
        assertEquals(8, p.displaced());
        byte[] t = p.trampoline();
        assertArrayEquals(Arrays.copyOf(code, 8), Arrays.copyOf(t, 8), "copied as is");
        assertEquals(0xe9, t[8] & 0xff);
        assertEquals(ENTRY + 8, TRAMP + 13 + rel32(t, 9), "jmp back after the displaced bytes");
        byte[] patch = p.entryPatch(0x5555_5500_1000L);
        assertEquals(0xe9, patch[0] & 0xff);
        assertEquals(0x5555_5500_1000L, ENTRY + 5 + rel32(patch, 1));
        assertArrayEquals(b(0xcc, 0xcc, 0xcc), Arrays.copyOfRange(patch, 5, 8), "the rest of the displaced bytes");
    }

    @Test
    void endbr64StaysAndTheJumpGoesAfterIt() {
        byte[] code = b(
            0xf3, 0x0f, 0x1e, 0xfa, // endbr64
            0x41, 0x54,             // push r12
            0x55,                   // push rbp
            0x53,                   // push rbx
            0x48, 0x89, 0xfb,       // mov rbx, rdi
            0xc3);
        Relocator.Plan p = plan(code);
        assertTrue(p.isValid(), p.refusal());
        assertEquals(ENTRY + 4, p.patchAt());
        assertEquals(7, p.displaced());
        assertArrayEquals(Arrays.copyOfRange(code, 4, 11), Arrays.copyOf(p.trampoline(), 7));
    }

    /**
     * A function that is one tail call through a function pointer, as redis has them, followed by alignment
     * padding: it moves whole, the jump copied (a RIP-relative operand adjusted), where it was refused as "a relative
     * branch".
     */
    @Test
    void aDisplacedIndirectJumpIsCopied() {
        Relocator.Plan p = Relocator.plan(decoder, b(0xff, 0x67, 0x78), ENTRY, TRAMP, a -> false, 13);
        assertTrue(p.isValid(), p.refusal()); // jmp qword ptr [rdi + 0x78]
        assertArrayEquals(b(0xff, 0x67, 0x78), Arrays.copyOf(p.trampoline(), 3));
        Relocator.Plan r = Relocator.plan(decoder, b(0x41, 0xff, 0xe3), ENTRY, TRAMP, a -> false, 13); // jmp r11
        assertTrue(r.isValid(), r.refusal());
        assertArrayEquals(b(0x41, 0xff, 0xe3), Arrays.copyOf(r.trampoline(), 3));
        Relocator.Plan q = plan(b(0xff, 0x25, 0x00, 0x10, 0x00, 0x00)); // jmp qword ptr [rip + 0x1000]: 6 bytes
        assertTrue(q.isValid(), q.refusal());
        assertEquals(ENTRY + 6 + 0x1000, TRAMP + 6 + rel32(q.trampoline(), 2), "the same pointer is read");
    }

    @Test
    void ripRelativeOperandKeepsItsTarget() {
        byte[] code = b(
            0x8b, 0x05, 0x00, 0x20, 0x00, 0x00, // mov eax, dword ptr [rip + 0x2000]
            0xc3);
        Relocator.Plan p = plan(code);
        assertTrue(p.isValid(), p.refusal());
        byte[] t = p.trampoline();
        assertEquals(0x8b, t[0] & 0xff);
        assertEquals(0x05, t[1] & 0xff);
        assertEquals(ENTRY + 6 + 0x2000, TRAMP + 6 + rel32(t, 2), "same absolute address from the trampoline");
    }

    @Test
    void conditionalRel8BecomesRel32ToTheSameTarget() {
        byte[] code = b(
            0x85, 0xff,             // test edi, edi
            0x74, 0x10,             // je +0x10 (to ENTRY + 0x14)
            0x8d, 0x47, 0x01,       // lea eax, [rdi + 1]
            0xc3);
        Relocator.Plan p = plan(code);
        assertTrue(p.isValid(), p.refusal());
        byte[] t = p.trampoline();
        assertArrayEquals(b(0x85, 0xff), Arrays.copyOf(t, 2));
        assertEquals(0x0f, t[2] & 0xff);
        assertEquals(0x84, t[3] & 0xff, "je rel32");
        assertEquals(ENTRY + 0x14, TRAMP + 8 + rel32(t, 4));
        assertArrayEquals(b(0x8d, 0x47, 0x01), Arrays.copyOfRange(t, 8, 11));
    }

    /** The 64-bit value the trampoline's {@code lea rsp, [rsp-8]; mov [rsp], lo; mov [rsp+4], hi} pushes. */
    static long pushed(byte[] t, int at) {
        assertArrayEquals(b(0x48, 0x8d, 0x64, 0x24, 0xf8), Arrays.copyOfRange(t, at, at + 5), "lea rsp, [rsp-8]");
        assertArrayEquals(b(0xc7, 0x04, 0x24), Arrays.copyOfRange(t, at + 5, at + 8), "mov dword [rsp], imm32");
        assertArrayEquals(b(0xc7, 0x44, 0x24, 0x04), Arrays.copyOfRange(t, at + 12, at + 16), "mov dword [rsp+4]");
        ByteBuffer bb = ByteBuffer.wrap(t).order(ByteOrder.LITTLE_ENDIAN);
        return (bb.getInt(at + 8) & 0xffffffffL) | (long) bb.getInt(at + 16) << 32;
    }

    /**
     * A displaced call returns to the original function, not into the trampoline (where no unwinder could follow):
     * the trampoline pushes the original return address and jumps to the callee, and needs no jump back.
     */
    @Test
    void aDisplacedCallReturnsToTheOriginalFunction() {
        byte[] code = b(0x48, 0x83, 0xec, 0x08, 0xe8, 0x00, 0x01, 0x00, 0x00, 0xc3); // sub rsp, 8; call +0x100; ret
        Relocator.Plan p = plan(code);
        assertTrue(p.isValid(), p.refusal());
        byte[] t = p.trampoline();
        assertArrayEquals(b(0x48, 0x83, 0xec, 0x08), Arrays.copyOf(t, 4));
        assertEquals(ENTRY + 9, pushed(t, 4), "the address after the original call");
        assertEquals(0xe9, t[24] & 0xff, "jmp rel32 to the callee");
        assertEquals(ENTRY + 9 + 0x100, TRAMP + 29 + rel32(t, 25));
        assertEquals(29, t.length, "no jump back: the callee returns to ENTRY + 9");
    }

    @Test
    void aDisplacedIndirectCallBecomesAJumpThroughTheSameOperand() {
        byte[] code = b(0xff, 0x15, 0x00, 0x20, 0x00, 0x00, 0xc3); // call [rip + 0x2000]; ret
        Relocator.Plan p = plan(code);
        assertTrue(p.isValid(), p.refusal());
        byte[] t = p.trampoline();
        assertEquals(ENTRY + 6, pushed(t, 0));
        assertArrayEquals(b(0xff, 0x25), Arrays.copyOfRange(t, 20, 22), "jmp [rip + disp32]");
        assertEquals(ENTRY + 6 + 0x2000, TRAMP + 26 + rel32(t, 22), "the same memory operand");
        byte[] viaR11 = plan(b(0x41, 0xff, 0xd3, 0x90, 0x90, 0xc3)).trampoline(); // call r11; nop; nop; ret
        assertTrue(viaR11 == null, "a call followed by more displaced instructions is refused");
        Relocator.Plan r = plan(b(0xff, 0x54, 0x24, 0x08, 0x90, 0xc3)); // call [rsp + 8]; nop; ret
        assertTrue(r.refusal().contains("uses the stack pointer"), r.refusal());
        Relocator.Plan last = plan(b(0x90, 0x90, 0x90, 0x41, 0xff, 0xd3, 0xc3)); // nop x3; call r11; ret
        assertTrue(last.isValid(), last.refusal());
        assertArrayEquals(b(0x41, 0xff, 0xe3), Arrays.copyOfRange(last.trampoline(), 23, 26), "jmp r11");
    }

    /**
     * A thread stopped between displaced instructions continues at the trampoline's copy of the next one; a
     * re-encoded branch shifts the copies after it; a moved call's start maps to its {@code lea}; the end of the
     * copies maps to the jump back; anything that is no instruction boundary maps nowhere.
     */
    @Test
    void eachDisplacedInstructionHasItsEquivalentInTheTrampoline() {
        byte[] code = b(
            0x85, 0xff,             // test edi, edi
            0x74, 0x10,             // je +0x10: je rel32 (6 bytes) in the trampoline
            0x0f, 0x05,             // syscall
            0xc3);
        Relocator.Plan p = plan(code);
        assertTrue(p.isValid(), p.refusal());
        assertEquals(6, p.displaced());
        byte[] original = Arrays.copyOf(code, p.displaced());
        java.util.function.LongUnaryOperator eq = rip -> Relocator.equivalent(decoder, original, ENTRY,
            Arrays.copyOf(p.trampoline(), Relocator.MAX_TRAMPOLINE), TRAMP, rip);
        assertEquals(TRAMP, eq.applyAsLong(ENTRY));
        assertEquals(TRAMP + 2, eq.applyAsLong(ENTRY + 2), "je");
        assertEquals(TRAMP + 8, eq.applyAsLong(ENTRY + 4), "syscall, after the 6-byte je");
        assertEquals(TRAMP + 10, eq.applyAsLong(ENTRY + 6), "the end: the jump back");
        assertEquals(0xe9, p.trampoline()[10] & 0xff);
        assertEquals(-1, eq.applyAsLong(ENTRY + 1), "inside test edi, edi");
        assertEquals(-1, eq.applyAsLong(ENTRY + 7), "past the displaced bytes");

        byte[] call = b(0x48, 0x83, 0xec, 0x08, 0xe8, 0x00, 0x01, 0x00, 0x00, 0xc3); // sub rsp, 8; call; ret
        Relocator.Plan c = plan(call);
        byte[] displacedCall = Arrays.copyOf(call, c.displaced());
        assertEquals(TRAMP + 4, Relocator.equivalent(decoder, displacedCall, ENTRY, c.trampoline(), TRAMP,
            ENTRY + 4), "the call's start: the lea that begins pushing its return address");
        assertEquals(-1, Relocator.equivalent(decoder, displacedCall, ENTRY, c.trampoline(), TRAMP, ENTRY + 9),
            "after a moved call is its return address, outside the trampoline");
    }

    @Test
    void tooShortFunctionIsRefused() {
        Relocator.Plan p = plan(b(0x31, 0xc0, 0xc3)); // xor eax, eax; ret
        assertTrue(!p.isValid());
        assertTrue(p.refusal().contains("shorter than the 5-byte jump"), p.refusal());
        Relocator.Plan q = plan(b(0x31, 0xc0, 0xc3, 0x0f, 0x1f, 0x40, 0x00)); // ...; ret; nop padding
        assertTrue(q.refusal().contains("function ends (ret"), q.refusal());
    }

    @Test
    void shortFunctionMovesWholeWhenPaddingFollows() {
        byte[] code = b(0x31, 0xc0, 0xc3); // xor eax, eax; ret  (followed by alignment padding)
        Relocator.Plan p = Relocator.plan(decoder, code, ENTRY, TRAMP, a -> false, 13);
        assertTrue(p.isValid(), p.refusal());
        assertEquals(5, p.displaced(), "the jump reaches 2 bytes into the padding");
        assertArrayEquals(b(0x31, 0xc0, 0xc3), Arrays.copyOf(p.trampoline(), 3), "the whole function");
        Relocator.Plan q = Relocator.plan(decoder, code, ENTRY, TRAMP, a -> false, 1);
        assertTrue(q.refusal().contains("even with the 1 bytes of padding"), q.refusal());
    }

    @Test
    void branchIntoDisplacedBytesIsRefused() {
        byte[] code = b(0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0xc3);
        Relocator.Plan p = Relocator.plan(decoder, code, ENTRY, TRAMP, a -> a == ENTRY + 1);
        assertTrue(p.refusal().contains("targets 0x" + Long.toHexString(ENTRY + 1)), p.refusal());
    }

    @Test
    void loopIsRefused() {
        byte[] code = b(0xe2, 0xfe, 0x90, 0x90, 0x90, 0xc3); // loop .; nops; ret
        Relocator.Plan p = plan(code);
        assertTrue(p.refusal().contains("only a rel8 form"), p.refusal());
    }
}
