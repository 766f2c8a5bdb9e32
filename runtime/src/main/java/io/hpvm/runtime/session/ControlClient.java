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
     * {@code \n}).
     */
    public static String readLine(SocketChannel ch, int capacity, long deadline) throws IOException {
        byte[] got = read(ch, capacity, deadline, (b, n) -> n > 0 && b[n - 1] == '\n');
        return new String(got, StandardCharsets.UTF_8);
    }

    /** No supervisor takes requests for the session (none listens on its socket): do the work here instead. */
    public static final class NotAnswering extends SystemException {
        NotAnswering(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Longer than any command takes in the supervisor (two compilations of a large file, say). */
    private static final long COMMAND_TIMEOUT_MS = 600_000;

    /**
     * Hands a whole command to the session's supervisor, which runs it in its warm JVM, and returns its answer.
     *
     * @throws NotAnswering when nothing accepts the connection (no supervisor: the caller takes the slow path)
     * @throws SystemException when the supervisor took the request but gave no complete answer
     */
    public static CommandRequest.Answer runCommand(SessionDir session, CommandRequest request)
        throws SystemException {
        return runCommand(session, request, openAhead());
    }

    /**
     * Opens a Unix socket on another thread and returns a way to wait for it. The first Unix socket of a JVM costs
     * 15-20 ms (the JDK seeds a SecureRandom for it, which loads the security providers): a thin client starts it
     * before it looks for its session, so the two overlap on the machine's cores.
     */
    public static Ahead openAhead() {
        Ahead a = new Ahead();
        Thread t = new Thread(a, "hpvm-socket");
        t.setDaemon(true);
        t.start();
        return a;
    }

    /** A socket being opened by {@link #openAhead}. */
    public static final class Ahead implements Runnable {
        private SocketChannel channel;
        private IOException failure;
        private boolean done;

        @Override
        public void run() {
            SocketChannel c = null;
            IOException e = null;
            try {
                c = SocketChannel.open(StandardProtocolFamily.UNIX);
                Selector.open().close(); // the answer is read through one: its classes load here too
            } catch (IOException x) {
                e = x;
            }
            synchronized (this) {
                channel = c;
                failure = e;
                done = true;
                notifyAll();
            }
        }

        synchronized SocketChannel get() throws IOException {
            while (!done) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while opening a Unix socket", e);
                }
            }
            if (failure != null) {
                throw failure;
            }
            return channel;
        }

        /** Closes the socket if it was never used. */
        public void discard() {
            try {
                SocketChannel c = get();
                if (c != null) {
                    c.close();
                }
            } catch (IOException ignored) {
                // nothing to close
            }
        }
    }

    /** As {@link #runCommand(SessionDir, CommandRequest)}, with a socket {@link #openAhead} opened. */
    public static CommandRequest.Answer runCommand(SessionDir session, CommandRequest request, Ahead socket)
        throws SystemException {
        SocketChannel ch;
        try {
            ch = socket.get();
        } catch (IOException e) {
            throw new SystemException("cannot open a Unix socket: " + e.getMessage(), e);
        }
        try (SocketChannel c = ch) {
            try {
                // By the verified real path: this client needs no descriptor (no native code) to look up and connect.
                c.connect(UnixDomainSocketAddress.of(session.workerPath("control")));
            } catch (IOException e) {
                throw new NotAnswering("no supervisor answers on " + session.workerPath("control") + " ("
                    + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()) + ")", e);
            }
            c.write(ByteBuffer.wrap(request.encode()));
            c.shutdownOutput();
            byte[] answer = readAll(c, 64 << 20, System.nanoTime() + COMMAND_TIMEOUT_MS * 1_000_000);
            try {
                return CommandRequest.Answer.decode(answer);
            } catch (RuntimeException e) {
                throw new SystemException("the supervisor of session " + session.dir() + " gave no complete answer to '"
                    + String.join(" ", request.args()) + "' (it may have exited meanwhile); what it did is unknown: "
                    + "check with 'hpvm ls'", e);
            }
        } catch (NotAnswering e) {
            throw e;
        } catch (IOException e) {
            throw new SystemException("talking to the supervisor of session " + session.dir() + ": " + e.getMessage()
                + "; what it did is unknown: check with 'hpvm ls'", e);
        }
    }

    /** Reads until the end of the stream, {@code capacity} bytes or the deadline. */
    public static byte[] readAll(SocketChannel ch, int capacity, long deadline) throws IOException {
        return read(ch, capacity, deadline, (b, n) -> false);
    }

    /** Whether the first {@code length} bytes of {@code buffer} are a complete message. */
    @FunctionalInterface
    public interface Complete {
        boolean test(byte[] buffer, int length);
    }

    /**
     * Reads until the end of the stream, {@code capacity} bytes, the deadline ({@code System.nanoTime()}), or until
     * {@code enough} says what arrived is complete, whichever comes first. Both ends of the control socket read this
     * way, so that neither waits forever on the other.
     */
    public static byte[] read(SocketChannel ch, int capacity, long deadline, Complete enough) throws IOException {
        ch.configureBlocking(false);
        byte[] buf = new byte[Math.min(capacity, 65536)];
        int length = 0;
        try (Selector s = Selector.open()) {
            ch.register(s, SelectionKey.OP_READ);
            while (length < capacity && !enough.test(buf, length)) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                if (left <= 0) {
                    break;
                }
                if (length == buf.length) {
                    buf = java.util.Arrays.copyOf(buf, (int) Math.min(capacity, 2L * buf.length));
                }
                s.select(left);
                s.selectedKeys().clear();
                int n = ch.read(ByteBuffer.wrap(buf, length, buf.length - length));
                if (n < 0) {
                    break;
                }
                length += n;
            }
        }
        return java.util.Arrays.copyOf(buf, length);
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
