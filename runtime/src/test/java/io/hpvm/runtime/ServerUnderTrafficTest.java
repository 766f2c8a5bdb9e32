package io.hpvm.runtime;

import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * examples/server (a threaded TCP server) patched and rolled back from source while four clients keep sending
 * requests: no request fails, and every connection opened after a command returned is served by the new code.
 */
class ServerUnderTrafficTest {

    @TempDir
    Path dir;

    /**
     * One answered request: its version, when its connection was opened and when that connection's first answer
     * came. The server's thread for the connection started in between, and entered conn() then.
     */
    record Answer(String version, long connectionOpened, long firstAnswer) {
    }

    @Test
    void patchAndRollbackWhileServing() throws Exception {
        Path src = dir.resolve("server.c");
        Files.copy(Path.of("..", "examples", "server", "server.c"), src);
        Path exe = Gcc.link(dir, "server", "-O2", "-g", "-pthread", src.toString());
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        Path sessions = dir.resolve("sessions");
        try (TestWorker w = TestWorker.start(sessions, List.of("--cflags", "-O2 -g"), exe, Integer.toString(port))) {
            w.awaitLine(0, l -> l.startsWith("listening on"), SwapTest.WAIT);
            AtomicBoolean running = new AtomicBoolean(true);
            ConcurrentLinkedQueue<Answer> answers = new ConcurrentLinkedQueue<>();
            ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
            List<Thread> clients = new ArrayList<>();
            for (int c = 0; c < 4; c++) {
                Thread t = new Thread(() -> traffic(port, running, answers, errors), "client-" + c);
                t.start();
                clients.add(t);
            }
            Thread.sleep(500);
            Files.copy(src, dir.resolve("server.c.orig"));
            Files.writeString(src, Files.readString(src).replace("(v1)", "(v2)"));
            Hpvm.Result patch = Hpvm.cmd(sessions, "patch", dir.resolve("server.c.orig").toString(), src.toString());
            long patched = System.nanoTime();
            assertEquals(0, patch.code(), patch.toString());
            assertTrue(patch.out().contains("respond"), patch.out());
            Thread.sleep(1000);
            long rollbackStarts = System.nanoTime();
            Hpvm.Result rollback = Hpvm.cmd(sessions, "rollback", "respond");
            long rolledBack = System.nanoTime();
            assertEquals(0, rollback.code(), rollback.toString());
            Thread.sleep(1000);
            running.set(false);
            for (Thread t : clients) {
                t.join(10_000);
            }
            assertTrue(errors.isEmpty(), errors.size() + " requests failed, first: " + errors.peek());
            long newConnectionsV2 = 0;
            for (Answer a : answers) {
                if (a.connectionOpened() > patched && a.firstAnswer() < rollbackStarts) {
                    assertEquals("(v2)", a.version(), "a connection opened after the patch");
                    newConnectionsV2++;
                } else if (a.connectionOpened() > rolledBack) {
                    assertEquals("(v1)", a.version(), "a connection opened after the rollback");
                }
            }
            assertTrue(newConnectionsV2 > 100, "traffic went on after the patch: " + newConnectionsV2);
            assertTrue(answers.stream().anyMatch(a -> a.connectionOpened() > rolledBack), "and after the rollback");
        }
    }

    /** Requests on a new connection every 20 requests until {@code running} ends; anything unexpected is an error. */
    static void traffic(int port, AtomicBoolean running, ConcurrentLinkedQueue<Answer> answers,
                        ConcurrentLinkedQueue<String> errors) {
        AtomicLong n = new AtomicLong();
        while (running.get()) {
            long opened = System.nanoTime();
            long first = 0;
            try (Socket s = new Socket("127.0.0.1", port)) {
                s.setSoTimeout(5000);
                OutputStream out = s.getOutputStream();
                BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(),
                    StandardCharsets.UTF_8));
                for (int i = 0; i < 20 && running.get(); i++) {
                    String req = "req" + n.incrementAndGet();
                    out.write((req + "\n").getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    String line = in.readLine();
                    if (line == null || !line.startsWith("hello " + req + " (v")) {
                        errors.add(req + " -> " + line);
                    } else {
                        first = first == 0 ? System.nanoTime() : first;
                        answers.add(new Answer(line.substring(line.lastIndexOf(' ') + 1), opened, first));
                    }
                }
            } catch (IOException e) {
                errors.add(e.toString());
            }
        }
    }
}
