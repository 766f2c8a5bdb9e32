package io.hpvm.runtime.swap;

import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LoadException;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionInfo;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Finds the registry record a user means by a name: exact, C++ demangled (with or without parameters), or none. */
final class FunctionLookup {

    private FunctionLookup() {
    }

    static FunctionRecord find(Registry reg, String name, SessionInfo info) throws HpvmException {
        FunctionRecord fn = reg.function(name);
        if (fn != null) {
            return fn;
        }
        if (Demangler.looksDemangled(name) || !name.startsWith("_Z")) {
            // 'ns::Class::method(int)', or a plain 'handle' for the C++ function handle(int)
            FunctionRecord cxx = byDemangledName(reg, name);
            if (cxx != null) {
                return cxx;
            }
        }
        List<String> similar = new ArrayList<>();
        for (FunctionRecord f : reg.functions()) {
            if (f.name().startsWith(name + "@") || f.name().contains(name)) {
                similar.add(f.name());
            }
        }
        similar.sort(null);
        throw new HpvmException(ExitCode.LINK_FAILED, "the worker (pid " + info.pid() + ", " + info.executable()
            + ") has no patchable function '" + name + "'"
            + (similar.isEmpty() ? "; 'hpvm ls' lists them" : "; did you mean: " + String.join(", ",
            similar.subList(0, Math.min(8, similar.size()))) + "?") + strippedHint(info));
    }

    /** For a stripped program run without its debug file: why a static function is not there, and the fix. */
    private static String strippedHint(SessionInfo info) {
        if (!info.symbols().isEmpty()) {
            return "";
        }
        try {
            return ElfImage.read(Path.of("/proc/" + info.pid() + "/exe")).hasSymtab()
                ? "" : ". The program is stripped and was started without its debug file, so only its exported "
                + "functions are patchable: start it with 'hpvm run --debug-file FILE' (or install its -dbgsym "
                + "package) for the static ones";
        } catch (LoadException e) {
            return "";
        }
    }

    /**
     * The function whose demangled name is {@code name} ({@code ns::Class::method(int)}), or, when {@code name} has
     * no parameter list, the only overload of that qualified name.
     */
    private static FunctionRecord byDemangledName(Registry reg, String name) throws HpvmException {
        List<FunctionRecord> all = reg.functions();
        List<String> mangled = all.stream().map(FunctionRecord::name).toList();
        if (mangled.stream().noneMatch(n -> n.startsWith("_Z"))) {
            return null; // a C program: nothing to demangle
        }
        List<String> plain = Demangler.demangle(mangled);
        List<FunctionRecord> exact = new ArrayList<>();
        List<FunctionRecord> overloads = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            String d = plain.get(i);
            if (d.equals(name)) {
                exact.add(all.get(i));
            } else if (!name.contains("(") && d.startsWith(name + "(")) {
                overloads.add(all.get(i));
            }
        }
        if (exact.size() == 1) {
            return exact.get(0);
        }
        if (exact.isEmpty() && overloads.size() == 1) {
            return overloads.get(0);
        }
        if (overloads.size() > 1) {
            List<String> names = new ArrayList<>();
            for (FunctionRecord f : overloads) {
                names.add(plain.get(all.indexOf(f)));
            }
            throw new HpvmException(ExitCode.USAGE, "'" + name + "' is overloaded in the worker: " + String.join(", ",
                names) + "; give the parameter list");
        }
        return null;
    }

    /** The name a registry record has in an object: without the {@code @0xADDR} of an ambiguous local name. */
    static String objectName(String registryName) {
        return registryName.replaceFirst("@0x[0-9a-f]+$", "");
    }
}
