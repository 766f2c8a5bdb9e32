package io.hpvm.runtime.linux;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * Another process's memory through {@code /proc/PID/mem}. Writes reach read-only (text) pages too when the process
 * is ptrace-stopped by us: the kernel forces them through copy-on-write, as a debugger's breakpoint does.
 */
public final class ProcessMemory implements AutoCloseable {

    private final int pid;
    private final RandomAccessFile file;
    private final FileChannel channel;

    public ProcessMemory(int pid, boolean writable) throws SystemException {
        this.pid = pid;
        try {
            this.file = new RandomAccessFile("/proc/" + pid + "/mem", writable ? "rw" : "r");
        } catch (IOException e) {
            throw new SystemException("open /proc/" + pid + "/mem: " + e.getMessage(), e);
        }
        this.channel = file.getChannel();
    }

    public byte[] read(long address, int length) throws SystemException {
        ByteBuffer b = ByteBuffer.allocate(length);
        try {
            while (b.hasRemaining()) {
                int n = channel.read(b, address + b.position());
                if (n <= 0) {
                    throw new IOException("short read");
                }
            }
        } catch (IOException e) {
            throw SystemException.io("read " + length + " bytes at 0x" + Long.toHexString(address) + " of process "
                + pid, e);
        }
        return b.array();
    }

    public void write(long address, byte[] bytes) throws SystemException {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        try {
            while (b.hasRemaining()) {
                int n = channel.write(b, address + b.position());
                if (n <= 0) {
                    throw new IOException("short write");
                }
            }
        } catch (IOException e) {
            throw SystemException.io("write " + bytes.length + " bytes at 0x" + Long.toHexString(address)
                + " of process " + pid, e);
        }
    }

    @Override
    public void close() {
        try {
            file.close();
        } catch (IOException ignored) {
            // nothing was buffered
        }
    }
}
