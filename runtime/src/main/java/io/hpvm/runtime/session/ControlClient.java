package io.hpvm.runtime.session;

import io.hpvm.runtime.linux.SystemException;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;

/**
 * Requests to a session's supervisor, for the few operations that need its ptrace rights (it is the worker's
 * parent). One request per connection on {@code SESSION/control}: a line {@code VERB ARG...}, answered by
 * {@code ok DETAIL} or {@code error MESSAGE}. Plain swaps never use it.
 */
public final class ControlClient {

    /** The verb of an unwind registration request (both sides use this constant). */
    public static final String REGISTER_UNWIND = "register-unwind";

    /** Longer than any request takes (a registration abandons its call after 2 s per process). */
    private static final long TIMEOUT_MS = 30_000;

    private ControlClient() {
    }

    /**
     * Asks the supervisor to call {@code registerFunction(ehFrame, storage)} ({@code __register_frame_info}) in the
     * worker for each of {@code ehFrames}. Returns the supervisor's detail line (which threads, how long).
     */
    public static String registerUnwind(SessionDir session, long registerFunction, java.util.List<Long> ehFrames)
        throws SystemException {
        StringBuilder line = new StringBuilder(REGISTER_UNWIND).append(' ').append(Long.toHexString(registerFunction));
        for (long eh : ehFrames) {
            line.append(' ').append(Long.toHexString(eh));
        }
        return request(session, line.toString());
    }

    /**
     * Reads from {@code ch} until a newline, the end of the stream, {@code capacity} bytes or {@code deadline}
     * ({@code System.nanoTime()}), whichever comes first, and returns what arrived (a complete line ends with
     * {@code \n}). Both ends of the control socket read this way, so that neither waits forever on the other.
     */
    public static String readLine(SocketChannel ch, int capacity, long deadline) throws IOException {
        ch.configureBlocking(false);
        ByteBuffer in = ByteBuffer.allocate(capacity);
        try (Selector s = Selector.open()) {
            ch.register(s, SelectionKey.OP_READ);
            while (in.hasRemaining() && (in.position() == 0 || in.get(in.position() - 1) != '\n')) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                if (left <= 0) {
                    break;
                }
                s.select(left);
                s.selectedKeys().clear();
                if (ch.read(in) < 0) {
                    break;
                }
            }
        }
        return new String(in.array(), 0, in.position(), StandardCharsets.UTF_8);
    }

    static String request(SessionDir session, String line) throws SystemException {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(session.control()));
            ch.write(ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
            long deadline = System.nanoTime() + TIMEOUT_MS * 1_000_000;
            String raw = readLine(ch, 4096, deadline);
            if (!raw.endsWith("\n") && System.nanoTime() >= deadline) {
                throw new SystemException("the supervisor of session " + session.dir() + " did not answer '"
                    + line.split(" ")[0] + "' within " + TIMEOUT_MS / 1000 + " s");
            }
            String reply = raw.trim();
            if (reply.startsWith("ok")) {
                return reply.substring(2).trim();
            }
            throw new SystemException("the supervisor of session " + session.dir() + " could not do '"
                + line.split(" ")[0] + "': " + (reply.startsWith("error ") ? reply.substring(6) : reply.isEmpty()
                ? "it closed the connection" : reply));
        } catch (IOException e) {
            throw new SystemException("cannot reach the supervisor of session " + session.dir() + " at "
                + SessionRoot.shown(session.control()) + " (" + e.getMessage() + "); it runs as 'hpvm run' and answers while the worker "
                + "lives. --no-unwind-info swaps without what it was asked for (C++ unwind information)", e);
        }
    }
}
