package io.hpvm.runtime.cli;

import io.hpvm.runtime.session.CommandRequest;
import io.hpvm.runtime.session.ControlClient;
import io.hpvm.runtime.session.SessionDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Runs the thin client's code once against a session root of its own (a session whose "supervisor" answers on a
 * socket this process opens), so that {@code bin/hpvm} can record the classes it loads in the client's
 * class-data-sharing archive. Not a command: {@code java -cp hpvm.jar io.hpvm.runtime.cli.ClientWarmup}.
 */
public final class ClientWarmup {

    private ClientWarmup() {
    }

    public static void main(String[] args) throws Exception {
        Path root = Files.createTempDirectory("hpvm-client-warmup");
        try {
            Path sessions = root.resolve("sessions");
            System.setProperty("hpvm.session.root", sessions.toString());
            PrintStream sink = new PrintStream(new ByteArrayOutputStream());
            Class.forName(Hpvm.class.getName()); // the entry point itself
            ThinClient.run(new String[] {"ls", "--patched"}, sink, sink); // no session yet: declines
            SessionDir.list();
            Path dir = Files.createDirectories(sessions.resolve(Long.toString(ProcessHandle.current().pid())));
            try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                server.bind(UnixDomainSocketAddress.of(dir.resolve("control")));
                Thread answer = new Thread(() -> {
                    try (SocketChannel ch = server.accept()) {
                        CommandRequest.decode(ControlClient.readAll(ch, 1 << 20, System.nanoTime() + 5_000_000_000L));
                        ch.configureBlocking(true);
                        ch.write(ByteBuffer.wrap(new CommandRequest.Answer(0, "", "").encode()));
                    } catch (Exception ignored) {
                        // only a warm-up
                    }
                });
                answer.start();
                try {
                    SessionDir.find(null); // not live (it maps no slot table): looked at, then refused
                } catch (Exception expected) {
                    // as planned
                }
                ControlClient.runCommand(SessionDir.list().get(0), CommandRequest.of(List.of("ls")));
                answer.join(1000);
            }
        } finally {
            try (var files = Files.walk(root)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }
}
