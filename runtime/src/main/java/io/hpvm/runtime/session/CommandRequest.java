package io.hpvm.runtime.session;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An hpvm command a thin client hands to the session's supervisor ({@code hpvm swap ...} as typed, with the working
 * directory and the environment variables commands read), and the supervisor's answer (exit code, standard output
 * and error as the command printed them). On the wire, after the line {@code command}: length-prefixed UTF-8
 * strings ({@code <decimal length>\n<bytes>}), the client half-closing its side when done; the answer is the line
 * {@code exit N} and two such strings.
 *
 * @param cwd  where relative paths in the arguments are relative to
 * @param env  the variables commands consult ({@code CC}, {@code CXX}, {@code HPVM_DEBUG})
 * @param args the command line after {@code hpvm}
 */
public record CommandRequest(Path cwd, Map<String, String> env, List<String> args) {

    /** The verb that starts a command request (other verbs are single lines: {@link ControlClient}). */
    public static final String VERB = "command";
    /** Environment variables a command's behaviour depends on, passed along. */
    public static final List<String> VARIABLES = List.of("CC", "CXX", "HPVM_DEBUG");
    /** The largest request accepted. */
    public static final int MAX_BYTES = 1 << 20;

    /** What the supervisor answers. */
    public record Answer(int exit, String out, String err) {
        public byte[] encode() {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            byte[] line = ("exit " + exit + "\n").getBytes(StandardCharsets.UTF_8);
            b.write(line, 0, line.length);
            put(b, out);
            put(b, err);
            return b.toByteArray();
        }

        public static Answer decode(byte[] bytes) {
            ByteBuffer in = ByteBuffer.wrap(bytes);
            String first = line(in);
            if (!first.startsWith("exit ")) {
                throw new IllegalArgumentException("not an answer: " + first);
            }
            return new Answer(Integer.parseInt(first.substring(5).trim()), get(in), get(in));
        }
    }

    /** This process's request for {@code args}. */
    public static CommandRequest of(List<String> args) {
        Map<String, String> env = new LinkedHashMap<>();
        for (String v : VARIABLES) {
            String value = System.getenv(v);
            if (value != null) {
                env.put(v, value);
            }
        }
        return new CommandRequest(Path.of("").toAbsolutePath(), env, List.copyOf(args));
    }

    public byte[] encode() {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] verb = (VERB + "\n").getBytes(StandardCharsets.UTF_8);
        b.write(verb, 0, verb.length);
        put(b, cwd.toString());
        put(b, Integer.toString(env.size()));
        env.forEach((k, v) -> put(b, k + "=" + v));
        put(b, Integer.toString(args.size()));
        args.forEach(a -> put(b, a));
        return b.toByteArray();
    }

    /** Reads a request (the bytes after the verb line included); malformed input throws IllegalArgumentException. */
    public static CommandRequest decode(byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        if (!line(in).equals(VERB)) {
            throw new IllegalArgumentException("not a command request");
        }
        Path cwd = Path.of(get(in));
        Map<String, String> env = new LinkedHashMap<>();
        int n = count(get(in));
        for (int i = 0; i < n; i++) {
            String kv = get(in);
            int eq = kv.indexOf('=');
            if (eq > 0 && VARIABLES.contains(kv.substring(0, eq))) {
                env.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
        List<String> args = new ArrayList<>();
        n = count(get(in));
        for (int i = 0; i < n; i++) {
            args.add(get(in));
        }
        return new CommandRequest(cwd, env, args);
    }

    private static int count(String s) {
        int n = Integer.parseInt(s);
        if (n < 0 || n > 10_000) {
            throw new IllegalArgumentException("count " + n);
        }
        return n;
    }

    private static void put(ByteArrayOutputStream b, String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        byte[] head = (bytes.length + "\n").getBytes(StandardCharsets.UTF_8);
        b.write(head, 0, head.length);
        b.write(bytes, 0, bytes.length);
    }

    private static String get(ByteBuffer in) {
        int n = Integer.parseInt(line(in));
        if (n < 0 || n > in.remaining()) {
            throw new IllegalArgumentException("a string of " + n + " bytes where " + in.remaining() + " remain");
        }
        byte[] bytes = new byte[n];
        in.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private static String line(ByteBuffer in) {
        StringBuilder s = new StringBuilder();
        while (in.hasRemaining()) {
            char c = (char) (in.get() & 0xff);
            if (c == '\n') {
                return s.toString();
            }
            if (s.length() > 32) {
                break;
            }
            s.append(c);
        }
        throw new IllegalArgumentException("a length line was expected");
    }
}
