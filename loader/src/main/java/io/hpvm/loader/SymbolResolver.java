package io.hpvm.loader;

/**
 * Tells the linker what a name means in the target address space. The loader knows nothing of processes: the
 * runtime implements this from the worker's executable, its stubs and the shared libraries it has loaded.
 */
@FunctionalInterface
public interface SymbolResolver {

    /**
     * Resolves {@code name} as the object's {@code symbol} uses it (an undefined reference, or a definition the
     * target may already have: a global function, or writable data the patch must bind to).
     *
     * @return where the target has it, or null when it has no such name
     */
    Resolution resolve(String name, Symbol symbol);

    /**
     * The offset from the thread pointer (%fs) of the target's thread-local variable {@code name} in every thread
     * (static TLS), or null when the target has no such variable there.
     */
    default Long threadPointerOffset(String name, Symbol symbol) {
        return null;
    }

    /**
     * For general- and local-dynamic TLS access ({@code __tls_get_addr}): the offset of the target's thread-local
     * variable {@code name} within the TLS block of the executable, which is module 1; null when the executable has
     * no such variable. (Libraries' variables are not offered: their module ids are the dynamic linker's.)
     */
    default Long moduleTlsOffset(String name, Symbol symbol) {
        return null;
    }

    /**
     * The run-time address of a GOT slot of the target's executable that holds {@code name}'s offset from the thread
     * pointer (its own initial-exec access to a shared library's thread-local variable), or null.
     */
    default Long tpoffSlot(String name) {
        return null;
    }

    /**
     * A resolved address.
     *
     * @param address run-time address in the target
     * @param origin  where it was found, for messages ("stub of fn", "worker", "libc.so.6")
     */
    record Resolution(long address, String origin) {
    }
}
