package io.hpvm.runtime.cli;

import io.hpvm.loader.LoadException;
import io.hpvm.loader.ObjectDiff;
import io.hpvm.loader.RelocatableObject;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.swap.SourceCompiler;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.ArrayList;
import java.util.List;

/** {@code hpvm patch}. */
@Command(name = "patch", mixinStandardHelpOptions = true,
    description = {"Compile OLD.c and NEW.c (C, or C++: .cc, .cpp, .cxx) with the same flags, find the functions "
        + "whose code differs, and swap "
        + "all of them from NEW.c as one patch set. Names NEW.c uses bind to the running worker (its functions, "
        + "globals and statics), so the file needs no editing for hpvm."},
    footer = {"", "Example:", "  cp server.c server.c.orig; $EDITOR server.c; hpvm patch server.c.orig server.c"})
final class PatchCommand extends PatchingCommand {

    @Option(names = "--cflags", paramLabel = "FLAGS",
        description = "Compiler flags (default: those given to 'hpvm run --cflags', else -O2).")
    String cflags;

    @Parameters(index = "0", paramLabel = "OLD.c", description = "The source file as the worker was built from it.")
    Path oldSource;

    @Parameters(index = "1", paramLabel = "NEW.c", description = "The edited source file.")
    Path newSource;

    @Override
    public Integer call() throws Exception {
        SwapEngine engine = engine();
        String flags = engine.compileFlags(cflags);
        Invocation here = Invocation.current();
        SourceCompiler cc = new SourceCompiler(session(), here.cwd(), here::env);
        // What changed is found against NEW renumbered to OLD's lines, so that a function below an inserted line,
        // whose __LINE__ constants moved, is not taken for changed; the swap uses NEW as written. The three
        // compilations run at once (redis's server.c: 10 s one after another on 2 cores).
        CompletableFuture<Path> oldObject = compiling(() -> cc.compile(oldSource, here.resolve(oldSource), flags));
        CompletableFuture<Path> newObject = compiling(() -> cc.compile(newSource, here.resolve(newSource), flags));
        Path compared = cc.compileRenumbered(newSource, here.resolve(oldSource), here.resolve(newSource), flags);
        ObjectDiff.Result diff;
        try {
            diff = ObjectDiff.compare(RelocatableObject.read(HpvmException.join(oldObject)), RelocatableObject.read(
                compared != null ? compared : HpvmException.join(newObject)));
        } catch (LoadException e) {
            throw ExitCode.wrap(e);
        }
        if (json) {
            emit(result().put("changed", diff.changed()).put("added", diff.added()));
        }
        if (!diff.added().isEmpty()) {
            say("new functions (linked where the changed ones use them): " + String.join(", ",
                diff.added()));
        }
        if (diff.changed().isEmpty()) {
            say("no function of " + newSource + " differs from " + oldSource + "; nothing swapped");
            return 0;
        }
        say("changed functions: " + String.join(", ", diff.changed()));
        List<String> set = new ArrayList<>(diff.changed());
        try {
            for (SwapEngine.Result r : engine.swap(set, HpvmException.join(newObject))) {
                if (json) {
                    emit(swapResult(r, newSource));
                } else {
                    out().println(SwapEngine.describe(r, newSource));
                }
                warn(r);
            }
        } catch (HpvmException e) {
            String message = "patch " + newSource + " (" + String.join(", ", set) + "): " + e.getMessage();
            throw e.detail().isEmpty() ? new HpvmException(e.code(), message, e) : new HpvmException(e.code(), message,
                e.detail());
        }
        return 0;
    }

    /** A compilation that may fail with an HpvmException. */
    @FunctionalInterface
    private interface Compilation {
        Path run() throws HpvmException;
    }

    private static CompletableFuture<Path> compiling(Compilation c) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return c.run();
            } catch (HpvmException e) {
                throw new CompletionException(e);
            }
        });
    }
}
