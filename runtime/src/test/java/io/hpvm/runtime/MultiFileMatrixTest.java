package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The "done when", at every flag combination: examples/shop (four files, static state in each) is built
 * with FLAGS and run under hpvm; one line of pricing.c changes; 'hpvm patch pricing.c pricing_new.c' swaps exactly
 * the functions that differ, all static state carries on; after a rollback, 'hpvm swap --all-changed pricing_new.o'
 * (the object compiled with the program's own FLAGS) does the same.
 */
class MultiFileMatrixTest {

    static final Path SHOP = Path.of("..", "examples", "shop");
    static final long[] BASE = {100, 250, 40, 999};
    static final Pattern LINE = Pattern.compile(
        "order (\\d+) item (\\d) qty (\\d+) total (\\d+) served (\\d+) quotes (\\d+) stock (\\d+)");
    /** The functions one edit of unit_price() may change, depending on inlining. */
    static final Set<String> MAY_CHANGE = Set.of("unit_price", "quote");

    @TempDir
    Path dir;

    static Stream<String> flags() {
        List<String> all = new ArrayList<>();
        for (String opt : List.of("-O0", "-O2", "-O3")) {
            for (String sections : List.of("", " -ffunction-sections")) {
                for (String pic : List.of("", " -fPIC")) {
                    for (String debug : List.of("", " -g")) {
                        all.add(opt + sections + pic + debug);
                    }
                }
            }
        }
        all.add("clang -O2 -g"); // built with clang: hpvm patch compiles with cc, the --all-changed object with clang
        all.add("clang -O0 -fPIC");
        return all.stream();
    }

    /** Compiles with gcc, or with clang when {@code flags} starts with "clang". */
    static void compile(Path dir, String flags, String... rest) {
        List<String> cmd = new ArrayList<>(Arrays.asList(flags.split(" ")));
        if (!flags.startsWith("clang")) {
            cmd.add(0, "gcc");
        }
        cmd.addAll(List.of(rest));
        Gcc.tool(cmd.toArray(new String[0]));
    }

    /** What the worker prints for an order, with unit price base * multiplier. */
    static long total(long[] f, int multiplier) {
        long amount = BASE[(int) f[1]] * multiplier * f[2];
        return amount + amount / 5;
    }

    static long[] parse(String line) {
        Matcher m = LINE.matcher(line);
        if (!m.matches()) {
            return null;
        }
        long[] f = new long[7];
        for (int i = 0; i < 7; i++) {
            f[i] = Long.parseLong(m.group(i + 1));
        }
        return f;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("flags")
    void editOneLineOfOneFileAndPatchIt(String flags) throws IOException {
        for (String f : List.of("main.c", "orders.c", "pricing.c", "inventory.c", "shop.h")) {
            Files.copy(SHOP.resolve(f), dir.resolve(f));
        }
        String pricing = Files.readString(dir.resolve("pricing.c"));
        assertTrue(pricing.contains("* 3;"), "the fixture's unit price line");
        Gcc.write(dir, "pricing_new.c", pricing.replace("* 3;", "* 4;"));
        Path exe = dir.resolve("shop");
        compile(dir, flags, "-o", exe.toString(), dir.resolve("main.c").toString(), dir.resolve("orders.c").toString(),
            dir.resolve("pricing.c").toString(), dir.resolve("inventory.c").toString());
        String cflags = flags.replaceFirst("^clang ", "");
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of("--cflags", cflags), exe)) {
            long[] before = parse(w.awaitLines(w.mark(), 3, SwapTest.WAIT).get(2));
            assertEquals(total(before, 3), before[3], "the original price: " + Arrays.toString(before));

            Hpvm.Result patch = Hpvm.cmd(sessions, "patch", dir.resolve("pricing.c").toString(),
                dir.resolve("pricing_new.c").toString());
            assertEquals(0, patch.code(), patch.toString());
            List<String> patched = assertChangedAreExactlyTheEdited(patch.out());
            long[] last = expectPrices(w, 4, before);

            Hpvm.Result rollback = Hpvm.cmd(sessions, "rollback", "quote");
            if (!patch.out().contains("swapped quote")) {
                rollback = Hpvm.cmd(sessions, "rollback", "unit_price");
            }
            assertEquals(0, rollback.code(), rollback.toString());
            last = expectPrices(w, 3, last);

            Path object = dir.resolve("pricing_new.o");
            compile(dir, flags, "-c", "-o", object.toString(), dir.resolve("pricing_new.c").toString());
            Hpvm.Result swap = Hpvm.cmd(sessions, "swap", "--all-changed", object.toString());
            assertEquals(0, swap.code(), swap.toString());
            assertEquals(patched, assertChangedAreExactlyTheEdited(swap.out()),
                "the object and the source diff find the same functions:\n" + patch.out() + swap.out());
            expectPrices(w, 4, last);
        }
    }

    /** The "changed functions:" line names only what the edit changes, and at least one of them; returns them. */
    static List<String> assertChangedAreExactlyTheEdited(String out) {
        Matcher m = Pattern.compile("changed functions: ([^\\n(]+)").matcher(out);
        assertTrue(m.find(), out);
        List<String> changed = Arrays.stream(m.group(1).trim().split(", ")).toList();
        assertFalse(changed.isEmpty(), out);
        for (String f : changed) {
            assertTrue(MAY_CHANGE.contains(f), f + " did not change but was swapped:\n" + out);
        }
        return changed;
    }

    /** What inventory.c's stock of {@code item} is after order {@code order}, had the worker never stopped. */
    static long stockAfter(long order, int item) {
        long stock = 100000;
        for (long j = item; j <= order; j += 4) {
            stock -= 1 + j % 3;
        }
        return stock;
    }

    /**
     * Waits for the first line priced with {@code multiplier}; that line and the next ones must all be, and the
     * static state of every file (served, quotes, stock) must carry on from {@code after}. Returns the last line.
     */
    static long[] expectPrices(TestWorker w, int multiplier, long[] after) {
        int first = w.awaitLineIndex(Math.max(0, w.mark() - 1), l -> {
            long[] f = parse(l);
            return f != null && f[0] > after[0] && f[3] == total(f, multiplier);
        }, SwapTest.WAIT);
        List<String> lines = w.awaitLines(first, 4, SwapTest.WAIT);
        long[] last = null;
        for (String line : lines) {
            long[] f = parse(line);
            assertTrue(f != null, "unexpected output: " + line + "\n" + w);
            assertEquals(total(f, multiplier), f[3], "price with * " + multiplier + ": " + line + "\n" + w);
            assertEquals(f[0] + 1, f[4], "orders.c's served counter carried on: " + line);
            assertEquals(f[0] + 1, f[5], "pricing.c's quotes counter carried on: " + line);
            assertEquals(stockAfter(f[0], (int) f[1]), f[6], "inventory.c's stock carried on: " + line);
            last = f;
        }
        return last;
    }
}
