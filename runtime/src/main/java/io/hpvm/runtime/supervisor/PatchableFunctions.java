package io.hpvm.runtime.supervisor;

import io.hpvm.loader.ElfImage;
import io.hpvm.loader.Section;
import io.hpvm.loader.Symbol;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Chooses the functions of an executable hpvm routes through slots: FUNC symbols with a size, defined in an
 * executable section, except the C runtime's start-up and tear-down helpers (they run before or after hpvm's view
 * of the program) and compiler-split {@code .cold} fragments (not entry points). Aliases (several names at one
 * address) share one slot, named after the global one. Local names that occur more than once get an
 * {@code @0xADDRESS} suffix so every name is unique.
 */
public final class PatchableFunctions {

    private static final Set<String> EXCLUDED = Set.of("_start", "_init", "_fini", "deregister_tm_clones",
        "register_tm_clones", "__do_global_dtors_aux", "frame_dummy", "__libc_csu_init", "__libc_csu_fini",
        "_dl_relocate_static_pie", "__libc_start_main", "_dl_start", "_dl_start_user");

    /**
     * A patchable function.
     *
     * @param name    unique name
     * @param address link-time entry address
     * @param size    size in bytes
     */
    public record Function(String name, long address, long size) {
    }

    private PatchableFunctions() {
    }

    /** The patchable functions of {@code image}, in address order. */
    public static List<Function> of(ElfImage image) {
        Map<Long, Symbol> byAddress = new LinkedHashMap<>();
        for (Symbol s : image.symbols()) {
            if (!s.isFunction() || s.size() <= 0 || !s.isDefined() || s.sectionIndex() >= image.sections().size()) {
                continue;
            }
            Section sec = image.sections().get(s.sectionIndex());
            if (!sec.isExecutable() || EXCLUDED.contains(s.name()) || s.name().isEmpty() || s.name().contains(".cold")) {
                continue;
            }
            Symbol prev = byAddress.get(s.value());
            if (prev == null || (prev.isLocal() && !s.isLocal())) {
                byAddress.put(s.value(), s);
            }
        }
        Map<String, Integer> nameCount = new HashMap<>();
        for (Symbol s : byAddress.values()) {
            nameCount.merge(s.name(), 1, Integer::sum);
        }
        List<Function> out = new ArrayList<>();
        for (Symbol s : byAddress.values()) {
            String name = nameCount.get(s.name()) > 1 ? s.name() + "@0x" + Long.toHexString(s.value()) : s.name();
            out.add(new Function(name, s.value(), s.size()));
        }
        out.sort((a, b) -> Long.compare(a.address(), b.address()));
        return out;
    }

    /** Address ranges {@code [start, end)} of every sized function symbol (where call sites are looked for). */
    public static List<long[]> codeRanges(ElfImage image, long bias) {
        Map<Long, Long> ranges = new LinkedHashMap<>();
        for (Symbol s : image.symbols()) {
            if (s.isFunction() && s.size() > 0 && s.isDefined()) {
                ranges.merge(s.value(), s.size(), Math::max);
            }
        }
        List<long[]> out = new ArrayList<>();
        ranges.forEach((start, size) -> out.add(new long[] {bias + start, bias + start + size}));
        out.sort((a, b) -> Long.compare(a[0], b[0]));
        return out;
    }
}
