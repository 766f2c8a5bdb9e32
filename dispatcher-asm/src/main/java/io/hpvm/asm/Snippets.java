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
