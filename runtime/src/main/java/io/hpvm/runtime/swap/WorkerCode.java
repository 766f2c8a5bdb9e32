package io.hpvm.runtime.swap;

import io.hpvm.asm.ClobberAnalysis;
import io.hpvm.loader.ElfImage;
import io.hpvm.loader.Section;
import io.hpvm.loader.Symbol;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The original code of the worker's functions, from its executable file (not from its memory: the file has the
 * call sites as the compiler emitted them, and needs no ptrace rights to read). Keys are run-time entry addresses.
 */
final class WorkerCode implements ClobberAnalysis.CodeSource {

    private final ElfImage exe;
    private final long bias;
    private final Map<Long, Symbol> functions = new HashMap<>();

    WorkerCode(ElfImage exe, long bias) {
        this.exe = exe;
        this.bias = bias;
        for (Symbol s : exe.symbols()) {
            if (s.isFunction() && s.isDefined() && s.size() > 0) {
                functions.merge(s.value(), s, (a, b) -> a.size() >= b.size() ? a : b);
            }
        }
    }

    @Override
    public byte[] code(long entry) {
        Symbol f = functions.get(entry - bias);
        if (f == null) {
            return null;
        }
        for (Section sec : exe.sections()) {
            if (sec.isExecutable() && sec.data().length > 0 && f.value() >= sec.address()
                && f.value() + f.size() <= sec.address() + sec.data().length) {
                int off = (int) (f.value() - sec.address());
                return Arrays.copyOfRange(sec.data(), off, off + (int) f.size());
            }
        }
        return null;
    }
}
