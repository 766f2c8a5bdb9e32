package io.hpvm.runtime.cli;

import io.hpvm.asm.CallSiteScanner;
import io.hpvm.asm.ClobberAnalysis;
import io.hpvm.asm.Decoder;
import io.hpvm.asm.Snippets;
import io.hpvm.loader.ElfImage;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SlotTable;
import picocli.CommandLine.Command;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code hpvm warmup} (hidden): exercises the classes every command loads (Chronicle Map above all), so that
 * bin/hpvm can record them in a class-data-sharing archive once and start every later command faster.
 */
@Command(name = "warmup", hidden = true, description = "Load hpvm's classes once (used by bin/hpvm for its CDS archive).")
final class WarmupCommand implements Callable<Integer> {

    @Override
    public Integer call() throws Exception {
        Path dir = Files.createTempDirectory("hpvm-warmup");
        try {
            try (Registry reg = Registry.create(dir.resolve("registry").toFile(), 4)) {
                reg.putFunction(new FunctionRecord("f", 0, 0x1000, 16, 0x2000, 1, 0, ""));
            }
            try (Registry reg = Registry.open(dir.resolve("registry").toFile())) {
                reg.function("f");
                reg.functions();
            }
            try (SlotTable slots = SlotTable.create(dir.resolve("slots"), 4)) {
                slots.setRelease(0, 0x1000);
            }
            byte[] stub = Snippets.stub(0x10000, 0x20000);
            Snippets.thunk(0x10000, 0x20000, 1);
            try (Decoder d = new Decoder(); Decoder detail = new Decoder(true)) {
                CallSiteScanner.scan(d, stub, 0x10000, List.of(new long[] {0x10000, 0x10000 + stub.length}),
                    a -> true);
                new ClobberAnalysis(detail, e -> e == 0x10000 ? stub : null).clobbers(0x10000);
            }
            ElfImage.read(Path.of("/proc/self/exe"));
            // The launch path itself (picocli's parsing of run's options, spawning under ptrace, injection, the
            // control socket) on a program every system has; its classes are most of what 'hpvm run' loads
            // before the worker runs. Skipped quietly where it cannot run (no ptrace here).
            java.io.PrintStream none = new java.io.PrintStream(java.io.OutputStream.nullOutputStream());
            Path sessions = dir.resolve("sessions");
            Files.createDirectory(sessions, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
            System.setProperty("hpvm.session.root", sessions.toString());
            for (String program : List.of("/bin/true", "/usr/bin/true")) {
                if (Files.isExecutable(Path.of(program))) {
                    Main.execute(none, none, "run", "-q", "--json", program);
                    break;
                }
            }
            Main.execute(none, none, "ls", "--json");
        } finally {
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        return 0;
    }
}
