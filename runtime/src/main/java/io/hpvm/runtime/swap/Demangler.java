package io.hpvm.runtime.swap;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * C++ names as people write them: {@code ns::Class::method(int)} for {@code _ZN2ns5Class6methodEi}. Uses binutils'
 * {@code c++filt} (installed with gcc), one batch per call.
 */
final class Demangler {

    private Demangler() {
    }

    /** True when a name the user typed looks like a demangled C++ name. */
    static boolean looksDemangled(String name) {
        return name.contains("::") || name.contains("(");
    }

    /** The demangled form of each name, in order (a name that is not mangled comes back unchanged). */
    static List<String> demangle(List<String> names) {
        try {
            Process p = new ProcessBuilder("c++filt").redirectErrorStream(true).start();
            Thread writer = new Thread(() -> {
                try (OutputStream in = p.getOutputStream()) {
                    for (String n : names) {
                        in.write((n + "\n").getBytes(StandardCharsets.UTF_8));
                    }
                } catch (IOException ignored) {
                    // c++filt died: the read below comes up short
                }
            });
            writer.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor(30, TimeUnit.SECONDS);
            List<String> lines = List.of(out.split("\n", -1));
            return lines.size() >= names.size() ? new ArrayList<>(lines.subList(0, names.size())) : names;
        } catch (IOException e) {
            return names;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return names;
        }
    }
}
