package io.hpvm.runtime;

import io.hpvm.runtime.linux.LibC;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Hardened hosts mount /dev/shm noexec, where the kernel refuses an executable mapping of a file. The test mounts a
 * tmpfs of its own noexec and uses it as the session root: the code region is a System V segment, which no mount
 * option affects, or, where hpvm is told to use files ({@code HPVM_CODE_REGION=file}, also what it falls back to
 * when System V shared memory is refused), a memfd (the ready line says so). Swaps, ls and rollback work as anywhere
 * else, and nothing on the noexec file system is mapped executable.
 */
class NoexecSessionRootTest {

    @TempDir
    Path dir;
    Path mount;

    @AfterEach
    void unmount() {
        if (mount != null) {
            OtherUser.run(List.of("umount", "-l", mount.toString()));
        }
    }

    /** A noexec tmpfs of the test's own, and the session root on it. */
    Path noexecRoot() {
        if (LibC.INSTANCE.getuid() != 0) {
            fail("this test mounts a noexec tmpfs, which needs root (CI runs the tests as root)");
        }
        try {
            mount = Files.createDirectory(dir.resolve("noexec-shm"));
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
        OtherUser.Result m = OtherUser.run(List.of("mount", "-t", "tmpfs", "-o", "noexec,nosuid,size=128m", "tmpfs",
            mount.toString()));
        if (m.code() != 0) {
            fail("cannot mount a noexec tmpfs for the test (mount says: " + m.out().trim() + "); the test needs root "
                + "with CAP_SYS_ADMIN");
        }
        assertTrue(OtherUser.run(List.of("findmnt", "-no", "OPTIONS", mount.toString())).out().contains("noexec"));
        return mount.resolve("hpvm");
    }

    @Test
    void aNoexecRootKeepsTheCodeInSharedMemory() throws Exception {
        Path root = noexecRoot();
        try (TestWorker w = TestWorker.start(root, List.of(), exe())) {
            assertTrue(!w.stderr().contains("code region:"), w.stderr());
            Path session = root.resolve(Integer.toString(w.pid()));
            assertTrue(Files.exists(session.resolve("code-shm")) && !Files.exists(session.resolve("code"))
                && !Files.exists(session.resolve("code-fd")), "the code region is a System V segment");
            swapAndRollBack(root, w, "/SYSV");
        }
    }

    @Test
    void aNoexecRootGetsAMemfdCodeRegionWhenFilesAreAskedFor() throws Exception {
        Path root = noexecRoot();
        try (TestWorker w = TestWorker.start(root, java.util.Map.of("HPVM_CODE_REGION", "file"), List.of(), exe())) {
            assertTrue(w.stderr().contains("(code region: a memfd, descriptor ") && w.stderr().contains(
                "as the session root is noexec, not System V shared memory: HPVM_CODE_REGION=file; perf will not "
                    + "name hpvm's code)"), w.stderr());
            Path session = root.resolve(Integer.toString(w.pid()));
            assertTrue(Files.exists(session.resolve("code-fd")) && !Files.exists(session.resolve("code")),
                "no code file on the noexec file system");
            swapAndRollBack(root, w, "/memfd:hpvm-code");
        }
    }

    Path exe() {
        return Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
    }

    void swapAndRollBack(Path root, TestWorker w, String mapped) throws Exception {
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        SwapTest.ok(Hpvm.cmd(root, "swap", "compute", patch.toString()));
        SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped into the code region");
        Hpvm.Result ls = SwapTest.ok(Hpvm.cmd(root, "ls"));
        assertTrue(ls.out().matches("(?s).*\\ncompute\\s+v1/1 .*"), ls.toString());
        SwapTest.ok(Hpvm.cmd(root, "rollback", "compute"));
        SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back");
        String maps = Files.readString(Path.of("/proc/" + w.pid() + "/maps"));
        assertTrue(maps.lines().anyMatch(l -> l.contains(mapped) && l.split("\\s+")[1].equals("r-xs")),
            "the worker maps the code region " + mapped + " read+exec:\n" + maps);
        assertEquals(0, maps.lines().filter(l -> l.contains(root.toString()) && l.split("\\s+")[1]
            .contains("x")).count(), "nothing on the noexec file system is mapped executable");
    }
}
