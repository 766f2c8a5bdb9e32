package io.hpvm.runtime.linux;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.StringArray;
import com.sun.jna.ptr.IntByReference;

/** The libc functions hpvm calls through JNA; names and constants as in C. */
public interface LibC extends Library {

    LibC INSTANCE = Native.load("c", LibC.class);

    int SIGHUP = 1;
    int SIGINT = 2;
    int SIGQUIT = 3;
    int SIGTRAP = 5;
    int SIGKILL = 9;
    int SIGTERM = 15;
    int SIGCONT = 18;
    int SIGSTOP = 19;

    int WUNTRACED = 2;
    int WNOHANG = 1;
    int __WALL = 0x40000000;

    int PTRACE_POKEDATA = 5;
    int PTRACE_CONT = 7;
    int PTRACE_GETREGS = 12;
    int PTRACE_SETREGS = 13;
    int PTRACE_DETACH = 17;
    int PTRACE_SEIZE = 0x4206;
    int PTRACE_INTERRUPT = 0x4207;
    int PTRACE_O_TRACEEXEC = 0x10;
    int PTRACE_O_EXITKILL = 0x100000;
    int PTRACE_EVENT_EXEC = 4;
    int PTRACE_EVENT_STOP = 128;

    short POSIX_SPAWN_SETSIGDEF = 0x04;
    short POSIX_SPAWN_SETSIGMASK = 0x08;

    int O_RDONLY = 0;
    int O_WRONLY = 1;
    int O_RDWR = 2;
    int O_NONBLOCK = 04000;
    int O_CREAT = 0100;
    int O_APPEND = 02000;
    int O_CLOEXEC = 02000000;
    int LOCK_EX = 2;
    int LOCK_UN = 8;

    int posix_spawn(IntByReference pid, String path, Pointer fileActions, Pointer attr, StringArray argv, Pointer envp);

    int posix_spawn_file_actions_init(Pointer fileActions);

    int posix_spawn_file_actions_addclosefrom_np(Pointer fileActions, int from);

    int posix_spawn_file_actions_destroy(Pointer fileActions);

    int posix_spawnattr_init(Pointer attr);

    int posix_spawnattr_setflags(Pointer attr, short flags);

    int posix_spawnattr_setsigmask(Pointer attr, Pointer mask);

    int posix_spawnattr_setsigdefault(Pointer attr, Pointer mask);

    int posix_spawnattr_destroy(Pointer attr);

    int sigemptyset(Pointer set);

    int sigfillset(Pointer set);

    int sigdelset(Pointer set, int sig);

    long ptrace(long request, long pid, long addr, long data) throws LastErrorException;

    int waitpid(int pid, IntByReference status, int options) throws LastErrorException;

    int kill(int pid, int sig) throws LastErrorException;

    int getuid();

    int geteuid();

    int dup2(int oldfd, int newfd) throws LastErrorException;

    int getpid();

    int open(String path, int flags, int mode) throws LastErrorException;

    int close(int fd);

    int ftruncate(int fd, long length) throws LastErrorException;

    int flock(int fd, int operation) throws LastErrorException;

    String strerror(int errnum);

    /** {@code syscall(2)} with two arguments (pidfd_open). */
    long syscall(long number, long a, long b) throws LastErrorException;

    int poll(Pointer fds, int nfds, int timeout) throws LastErrorException;

    long read(int fd, byte[] buffer, long count) throws LastErrorException;

    /** {@code syscall(2)} with a pointer and four integers (perf_event_open). */
    long syscall(long number, Pointer a, long b, long c, long d, long e) throws LastErrorException;

    Pointer mmap(Pointer addr, long length, int prot, int flags, int fd, long offset) throws LastErrorException;

    int munmap(Pointer addr, long length);

    long write(int fd, byte[] buffer, long count) throws LastErrorException;

    int IPC_PRIVATE = 0;
    int IPC_CREAT = 01000;
    int IPC_RMID = 0;
    int IPC_STAT = 2;
    int SHM_RDONLY = 010000;
    int SHM_EXEC = 0100000;

    int shmget(int key, long size, int flags) throws LastErrorException;

    Pointer shmat(int id, Pointer addr, int flags) throws LastErrorException;

    int shmdt(Pointer addr) throws LastErrorException;

    int shmctl(int id, int cmd, Pointer buf) throws LastErrorException;
}
