package io.hpvm.asm;

import io.hpvm.loader.LinkedImage;
import io.hpvm.loader.LoadException;
import io.hpvm.loader.Linker;
import io.hpvm.loader.RelocatableObject;
import io.hpvm.loader.SymbolResolver;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * The machine-code snippets hpvm places in a worker, assembled at build time from {@code src/main/asm/*.S} and
 * instantiated here with the loader (so a stub is linked exactly like a patch is).
 */
public final class Snippets {

    /** Bytes reserved per dispatcher stub in the code region (the stub is 6 bytes; 16 keeps stubs aligned). */
    public static final int STUB_STRIDE = 16;

    private static final RelocatableObject STUB = load("stub.o");
    private static final RelocatableObject SYSCALL = load("syscall.o");
    private static final RelocatableObject FORWARD = load("forward.o");
    private static final RelocatableObject THUNK = load("thunk.o");
    private static final RelocatableObject AGENT = load("agent.o");

    private Snippets() {
    }

    private static RelocatableObject load(String name) {
        try (InputStream in = Snippets.class.getResourceAsStream("snippets/" + name)) {
            if (in == null) {
                throw new IllegalStateException("snippet " + name + " is missing from the build (src/main/asm)");
            }
            return RelocatableObject.read("snippets/" + name, in.readAllBytes());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (LoadException e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
    }

    /** The dispatcher stub {@code jmp [rip+slot]} linked for {@code stubAddress}, jumping through {@code slot}. */
    public static byte[] stub(long stubAddress, long slotAddress) throws LoadException {
        LinkedImage img = Linker.link(STUB, "hpvm_stub",
            (name, sym) -> "hpvm_slot".equals(name) ? new SymbolResolver.Resolution(slotAddress, "slot") : null,
            stubAddress);
        if (img.size() > STUB_STRIDE) {
            throw new IllegalStateException("stub.S grew beyond " + STUB_STRIDE + " bytes");
        }
        return img.bytes();
    }

    /**
     * Stubs for many functions at once (launch writes one per patchable function: 1,472 for python3.11, 25,000
     * for gcc's cc1). {@code stub.S} is linked once, for the first pair of addresses; as long as it is the 6-byte
     * {@code jmp qword ptr [rip + disp32]} it is today (checked against that link; the rest of the linked image is
     * the section's padding), every other stub is the same bytes with its own displacement. Linking each one took 50 microseconds, 70-90 ms of a python3.11 launch.
     *
     * @param stubAddress the address of stub {@code i}
     * @param slotAddress the address of slot {@code i}
     */
    public static byte[][] stubs(int count, java.util.function.IntToLongFunction stubAddress,
                                 java.util.function.IntToLongFunction slotAddress) throws LoadException {
        byte[][] out = new byte[count][];
        if (count == 0) {
            return out;
        }
        byte[] first = stub(stubAddress.applyAsLong(0), slotAddress.applyAsLong(0));
        boolean jmpRipIndirect = first.length >= 6 && (first[0] & 0xff) == 0xff && first[1] == 0x25
            && readInt(first, 2) == slotAddress.applyAsLong(0) - (stubAddress.applyAsLong(0) + 6);
        for (int i = 0; i < count; i++) {
            long from = stubAddress.applyAsLong(i);
            long to = slotAddress.applyAsLong(i);
            long disp = to - (from + 6);
            if (!jmpRipIndirect || disp != (int) disp) {
                out[i] = stub(from, to); // another stub.S, or a slot out of reach: the linker decides (and says)
                continue;
            }
            byte[] b = first.clone();
            b[2] = (byte) disp;
            b[3] = (byte) (disp >> 8);
            b[4] = (byte) (disp >> 16);
            b[5] = (byte) (disp >> 24);
            out[i] = b;
        }
        return out;
    }

    private static int readInt(byte[] b, int at) {
        return (b[at] & 0xff) | (b[at + 1] & 0xff) << 8 | (b[at + 2] & 0xff) << 16 | (b[at + 3] & 0xff) << 24;
    }

    /**
     * The signal forwarder {@code void hpvm_forward_signal(int, siginfo_t *, void *)} linked for {@code address},
     * reading the worker's pid from the int at {@code pidAddress}.
     */
    public static byte[] signalForwarder(long address, long pidAddress) throws LoadException {
        return Linker.link(FORWARD, "hpvm_forward_signal",
            (name, sym) -> "hpvm_forward_pid".equals(name) ? new SymbolResolver.Resolution(pidAddress, "pid") : null,
            address).bytes();
    }

    /**
     * The register-preserving thunk ({@code thunk.S}) linked for {@code address}: calls {@code target}, then restores
     * the caller-saved registers in {@code preserveMask} (a {@link Registers} mask).
     */
    public static byte[] thunk(long address, long target, long preserveMask) throws LoadException {
        return thunkImage(address, target, preserveMask).bytes();
    }

    /** The thunk as a linked image: its bytes and its unwind information ({@link LinkedImage#unwindInfo()}). */
    public static LinkedImage thunkImage(long address, long target, long preserveMask) throws LoadException {
        return Linker.link(THUNK, "hpvm_thunk", (name, sym) -> switch (name) {
            case "hpvm_thunk_target" -> new SymbolResolver.Resolution(target, "new version");
            case "hpvm_thunk_mask" -> new SymbolResolver.Resolution(preserveMask, "register mask");
            default -> null;
        }, address);
    }

    /** {@code syscall; int3}, for injection at {@code address}. */
    public static byte[] syscall(long address) throws LoadException {
        return Linker.link(SYSCALL, "hpvm_syscall", (name, sym) -> null, address).bytes();
    }

    /**
     * hpvm's agent thread ({@code agent.S}: {@code void *hpvm_agent(void *fds)}, a pthread start routine) linked
     * for {@code address}: its bytes and its entry's address.
     */
    public static LinkedImage agent(long address) throws LoadException {
        return Linker.link(AGENT, "hpvm_agent", (name, sym) -> null, address);
    }
}
