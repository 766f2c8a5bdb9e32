package io.hpvm.runtime.cli;

import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.swap.SourceCompiler;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.List;

/** {@code hpvm swap}. */
@Command(name = "swap", mixinStandardHelpOptions = true,
    description = {"Replace FUNCTION in the running worker with FUNCTION from OBJECT, an unlinked ELF relocatable "
        + "object (gcc -c). Calls that start after the swap run the new code; calls in flight finish in the old.",
        "The object's undefined names bind to the worker: its patchable functions (through their slots), its other "
            + "symbols, then its shared libraries. Its globals and statics bind to the worker's live ones by name; "
            + "new writable data is refused (a patch must be stateless)."},
    footer = {"", "Examples:", "  gcc -O2 -c fixed.c -o fixed.o && hpvm swap compute fixed.o",
        "  gcc -O2 -c pricing.c -o pricing.o && hpvm swap --all-changed pricing.o"})
final class SwapCommand extends PatchingCommand {

    @picocli.CommandLine.Option(names = {"-v", "--verbose"},
        description = "Also print where each section went and what each name was bound to.")
    boolean verbose;

    @picocli.CommandLine.Option(names = "--timings", description = "Print how long each phase of the swap took.")
    boolean timings;

    @picocli.CommandLine.Option(names = "--all-changed",
        description = "Swap every function of OBJECT whose code differs from the worker's (no FUNCTION names): "
            + "compared byte for byte outside relocations, each relocation proven to reach the same symbol, variable "
            + "or constant; whatever cannot be proven the same is swapped.")
    boolean allChanged;

    @Parameters(arity = "1..*", paramLabel = "FUNCTION... OBJECT",
        description = {"The function(s) to replace, then the relocatable object that defines them (gcc -c) or a C "
            + "source file (.c; .cc, .cpp, .cxx for C++) to compile first.", "Several functions are swapped as one patch set: linked "
            + "together (they call each other's new code) and rolled back together."})
    List<String> args;

    @picocli.CommandLine.Option(names = "--cflags", paramLabel = "FLAGS",
        description = "Flags for compiling a source file (default: those given to 'hpvm run --cflags', else -O2).")
    String cflags;

    @Override
    public Integer call() throws Exception {
        Path object = Path.of(args.get(args.size() - 1));
        List<String> functions = args.subList(0, args.size() - 1);
        if (allChanged != functions.isEmpty()) {
            throw new HpvmException(ExitCode.USAGE, allChanged ? "--all-changed takes only the OBJECT, not function "
                + "names" : "missing FUNCTION or OBJECT: 'hpvm swap FUNCTION... OBJECT', or 'hpvm swap --all-changed "
                + "OBJECT'");
        }
        SwapEngine engine = engine();
        Invocation here = Invocation.current();
        Path linked = here.resolve(object);
        if (SourceCompiler.isSource(object)) {
            linked = new SourceCompiler(session(), here.cwd(), here::env).compile(object, linked,
                engine.compileFlags(cflags));
        }
        if (allChanged) {
            SwapEngine.Changes changes = engine.changedFunctions(linked);
            if (json) {
                emit(result().put("changed", changes.changed()).put("proven_same", changes.same().size())
                    .put("not_in_worker", changes.absent()));
            }
            if (!changes.absent().isEmpty()) {
                say("not in the worker (linked where the changed ones use them): " + String.join(", ",
                    changes.absent()));
            }
            if (changes.changed().isEmpty()) {
                say("no function of " + object + " differs from the worker's; nothing swapped ("
                    + changes.same().size() + " proven the same)");
                return 0;
            }
            say("changed functions: " + String.join(", ", changes.changed()) + " ("
                + changes.same().size() + " proven the same)");
            functions = changes.changed();
        }
        for (SwapEngine.Result r : engine.swap(functions, linked)) {
            report(r, object);
        }
        return 0;
    }

    private void report(SwapEngine.Result r, Path object) {
        if (json) {
            emit(swapResult(r, object).put("timings_us", timings ? r.timings().micros() : null));
            warn(r);
            return;
        }
        out().println(SwapEngine.describe(r, object));
        if (timings) {
            out().println("  timings: " + r.timings().describe() + (Invocation.current().session() != null
                ? " (in the supervisor's JVM)" : " (in this process)"));
        }
        if (verbose && r.image() != null) {
            r.image().sections().forEach((name, at) -> out().printf("  section %-24s at 0x%x%n", name, at));
            r.image().bindings().forEach((name, res) -> out().printf("  %-32s -> 0x%x (%s)%n", name, res.address(),
                res.origin()));
            out().printf("  %d GOT entries, %d veneers%n", r.image().gotEntries(), r.image().veneers());
        }
        warn(r);
    }
}
