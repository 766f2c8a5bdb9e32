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
 * tmpfs of its own noexec and uses it as the session root: the code region then comes from memfd_create (the ready
 * line says so), and swaps, ls and rollback work as anywhere else.
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

    @Test
    void aNoexecRootGetsAMemfdCodeRegion() throws Exception {
        if (LibC.INSTANCE.getuid() != 0) {
            fail("this test mounts a noexec tmpfs, which needs root (CI runs the tests as root)");
        }
        mount = Files.createDirectory(dir.resolve("noexec-shm"));
        OtherUser.Result m = OtherUser.run(List.of("mount", "-t", "tmpfs", "-o", "noexec,nosuid,size=128m", "tmpfs",
            mount.toString()));
        if (m.code() != 0) {
            fail("cannot mount a noexec tmpfs for the test (mount says: " + m.out().trim() + "); the test needs root "
                + "with CAP_SYS_ADMIN");
        }
        assertTrue(OtherUser.run(List.of("findmnt", "-no", "OPTIONS", mount.toString())).out().contains("noexec"));
        Path root = mount.resolve("hpvm");
        Path exe = Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(root, List.of(), exe)) {
            assertTrue(w.stderr().contains("noexec: the code region is a memfd"), w.stderr());
            Path session = root.resolve(Integer.toString(w.pid()));
            assertTrue(Files.exists(session.resolve("code-fd")) && !Files.exists(session.resolve("code")),
                "no code file on the noexec file system");
            SwapTest.ok(Hpvm.cmd(root, "swap", "compute", patch.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped into the memfd code region");
            Hpvm.Result ls = SwapTest.ok(Hpvm.cmd(root, "ls"));
            assertTrue(ls.out().matches("(?s).*\\ncompute\\s+v1/1 .*"), ls.toString());
            SwapTest.ok(Hpvm.cmd(root, "rollback", "compute"));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back");
            String maps = Files.readString(Path.of("/proc/" + w.pid() + "/maps"));
            assertTrue(maps.contains("/memfd:hpvm-code"), "the worker maps the memfd:\n" + maps);
            assertEquals(0, maps.lines().filter(l -> l.contains(root.toString()) && l.split("\\s+")[1]
                .contains("x")).count(), "nothing on the noexec file system is mapped executable");
        }
    }
}
