package io.hpvm.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --json}: one JSON object per line and per result on stdout (the ready line of {@code run} on stderr), parsed
 * here with a real parser; the fields carry what the human lines say. Errors are objects too, with the exit code.
 */
class JsonOutputTest {

    static final ObjectMapper MAPPER = new ObjectMapper();

    @TempDir
    Path dir;

    /** Every line of {@code text} as a JSON object (failing on anything that is not one). */
    static List<JsonNode> objects(String text) {
        List<JsonNode> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.isEmpty()) {
                continue;
            }
            try {
                JsonNode n = MAPPER.readTree(line);
                assertTrue(n.isObject(), line);
                out.add(n);
            } catch (Exception e) {
                throw new AssertionError("not a JSON object: " + line, e);
            }
        }
        return out;
    }

    static JsonNode only(Hpvm.Result r) {
        List<JsonNode> all = objects(r.out());
        assertEquals(1, all.size(), r.toString());
        return all.get(0);
    }

    @Test
    void runSwapRollbackAndLsSpeakJson() {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of("--json"), exe)) {
            JsonNode ready = objects(w.stderr()).get(0);
            assertEquals("ready", ready.get("event").asText());
            assertEquals(w.pid(), ready.get("pid").asInt());
            assertEquals(sessions.resolve(Integer.toString(w.pid())).toString(), ready.get("session").asText());
            assertTrue(ready.get("functions").asInt() >= 2 && ready.get("ready_ms").asLong() > 0, ready.toString());
            assertTrue(ready.get("agent_thread").isNull(), "a C program without libgcc_s gets no agent: " + ready);

            JsonNode swap = only(SwapTest.ok(Hpvm.cmd(sessions, "swap", "--json", "compute", patch.toString())));
            assertTrue(swap.get("ok").asBoolean() && swap.get("command").asText().equals("swap"), swap.toString());
            assertEquals("compute", swap.get("function").asText());
            assertEquals(0, swap.get("from_version").asInt());
            assertEquals(1, swap.get("to_version").asInt());
            assertTrue(swap.get("address").asText().startsWith("0x") && swap.get("bytes").asInt() > 0, swap.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped");
            // The supervisor reuses its command-line model: one command's --json must not leak into the next.
            Hpvm.Result human = SwapTest.ok(Hpvm.cmd(sessions, "ls"));
            assertTrue(human.out().startsWith("worker " + w.pid() + "  "), human.toString());

            JsonNode ls = only(SwapTest.ok(Hpvm.cmd(sessions, "ls", "--json")));
            assertEquals(w.pid(), ls.get("pid").asInt());
            JsonNode compute = null;
            for (JsonNode f : ls.get("functions")) {
                if (f.get("name").asText().equals("compute")) {
                    compute = f;
                }
            }
            assertTrue(compute != null, ls.toString());
            assertEquals(1, compute.get("version").asInt());
            assertEquals(swap.get("address").asText(), compute.get("address").asText(), "ls shows the new version");
            assertEquals(1, ls.get("patched").asInt());

            JsonNode back = only(SwapTest.ok(Hpvm.cmd(sessions, "rollback", "--json", "compute")));
            assertEquals(1, back.get("from_version").asInt());
            assertEquals(0, back.get("to_version").asInt());
            assertTrue(back.get("returned_to").asText().contains("the original code"), back.toString());
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back");

            JsonNode sessionsList = only(SwapTest.ok(Hpvm.cmd(sessions, "ls", "--json", "--sessions")));
            assertEquals("live", sessionsList.get("state").asText());
            assertEquals(1, sessionsList.get("patched").asInt(), "swapped at least once, as the human list says");
        }
    }

    /** A failure is an object with ok false, the exit code and the message; stderr keeps the human line. */
    @Test
    void errorsAreObjectsWithTheExitCode() {
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of(), exe)) {
            for (boolean thin : new boolean[] {true, false}) {
                Hpvm.Result r = thin ? Hpvm.cmd(sessions, "swap", "--json", "nosuch", exe.toString())
                    : Hpvm.direct(sessions, "swap", "--json", "nosuch", exe.toString());
                JsonNode e = only(r);
                assertTrue(!e.get("ok").asBoolean() && e.get("command").asText().equals("swap"), e.toString());
                assertEquals(r.code(), e.get("exit_code").asInt());
                assertTrue(r.code() != 0 && r.err().startsWith("hpvm: error: ")
                    && r.err().contains(e.get("error").asText()), r.toString());
            }
        }
    }
}
