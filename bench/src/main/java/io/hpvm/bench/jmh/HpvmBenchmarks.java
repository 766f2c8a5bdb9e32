package io.hpvm.bench.jmh;

import io.hpvm.loader.ElfImage;
import io.hpvm.loader.LinkedImage;
import io.hpvm.loader.Linker;
import io.hpvm.loader.RelocatableObject;
import io.hpvm.loader.Symbol;
import io.hpvm.loader.SymbolResolver;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SlotTable;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** The in-process costs behind a swap. The object linked is examples/price_fix.o (calls printf, has a string). */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class HpvmBenchmarks {

    private Path dir;
    private SlotTable slots;
    private long slotValue;
    private Path object;
    private RelocatableObject parsed;
    private File registryFile;

    /** What each benchmark measures, for the report. */
    public static String describe(String name) {
        return switch (name) {
            case "slotStore" -> "the swap itself: one 8-byte release store into the mapped slot table";
            case "parseObject" -> "reading new.o: sections, symbols, relocations";
            case "linkObject" -> "linking the parsed object at an arena address (resolution by a map)";
            case "resolveLibraryExports" -> "reading libc's dynamic symbols: the per-swap cost of library lookups";
            case "openRegistry" -> "opening and closing the session's Chronicle Map";
            case "decodeLibcText" -> "Capstone (raw cs_disasm through JNA) over libc's whole .text, warm JIT";
            default -> "";
        };
    }

    private byte[] libcText;
    private long libcTextAddress;
    private io.hpvm.asm.Decoder decoder;

    /** Size of libc's .text, to turn decodeLibcText's time into MB/s. */
    public static long libcTextSize() throws Exception {
        return ElfImage.read(Path.of("/lib/x86_64-linux-gnu/libc.so.6")).section(".text").size();
    }

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        io.hpvm.loader.Section text = ElfImage.read(Path.of("/lib/x86_64-linux-gnu/libc.so.6")).section(".text");
        libcText = text.data();
        libcTextAddress = text.address();
        decoder = new io.hpvm.asm.Decoder();
        dir = Files.createTempDirectory("hpvm-jmh");
        slots = SlotTable.create(dir.resolve("slots"), 1024);
        object = Path.of(System.getProperty("hpvm.bench.object"));
        parsed = RelocatableObject.read(object);
        registryFile = dir.resolve("registry").toFile();
        Registry.create(registryFile, 1000).close();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        slots.close();
    }

    @Benchmark
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public void slotStore() {
        slots.setRelease((int) (slotValue & 1023), ++slotValue);
    }

    @Benchmark
    public RelocatableObject parseObject() throws Exception {
        return RelocatableObject.read(object);
    }

    @Benchmark
    public LinkedImage linkObject() throws Exception {
        return Linker.link(parsed, "price",
            (name, sym) -> new SymbolResolver.Resolution(0x7f00_0000_0000L + name.length(), "bench"),
            0x5555_0000_0000L);
    }

    @Benchmark
    public Map<String, Symbol> resolveLibraryExports() throws Exception {
        Map<String, Symbol> m = new HashMap<>();
        for (Symbol s : ElfImage.read(Path.of("/lib/x86_64-linux-gnu/libc.so.6")).exportedSymbols()) {
            m.putIfAbsent(s.name(), s);
        }
        return m;
    }

    /** Decodes all of libc's .text, resynchronising after undecodable bytes; returns the instruction count. */
    @Benchmark
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    public long decodeLibcText() {
        com.sun.jna.Memory mem = new com.sun.jna.Memory(libcText.length);
        mem.write(0, libcText, 0, libcText.length);
        long[] count = {0};
        long at = 0;
        while (at < libcText.length) {
            long n = decoder.decode(mem.share(at), libcText.length - at, libcTextAddress + at, insn -> {
                count[0]++;
                return true;
            });
            at += Math.max(1, n);
        }
        return count[0];
    }

    @Benchmark
    public void openRegistry() throws Exception {
        Registry.open(registryFile).close();
    }
}
