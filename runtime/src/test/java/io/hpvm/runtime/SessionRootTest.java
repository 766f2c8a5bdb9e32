package io.hpvm.runtime;

import io.hpvm.runtime.session.SessionDir;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The session root is never trusted by its name. Another local user can create names in a shared sticky directory
 * (like /dev/shm, which the test recreates as SHM): a root they made, with any mode, or a file, or a symbolic link
 * to one of the victim's directories, is refused with exit 7 naming the path, its owner and mode, and nothing of the
 * victim's is created, moved or deleted. A root reached through the user's own symbolic link works.
 */
class SessionRootTest {

    @TempDir
    Path dir;
    /** Like /dev/shm: world-writable and sticky, owned by root. */
    Path shm;

    @BeforeEach
    void makeSharedDirectory() throws IOException {
        shm = Files.createTempDirectory(Path.of("/tmp"), "hpvm-shm-");
        Files.setPosixFilePermissions(shm, PosixFilePermissions.fromString("rwxrwxrwx"));
        OtherUser.run(List.of("chmod", "1777", shm.toString()));
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
    }

    @AfterEach
    void removeSharedDirectory() {
        OtherUser.run(List.of("rm", "-rf", shm.toString()));
    }

    Path worker() {
        return Gcc.executable(dir, "loop", SwapTest.LOOP_WORKER, "-O2");
    }

    /** {@code hpvm run} with that root must exit 7 with a message naming all of {@code fragments}. */
    void runIsRefused(Path root, String... fragments) {
        try (TestWorker w = TestWorker.launch(root, List.of(), worker())) {
            assertEquals(7, w.waitExit(Duration.ofSeconds(60)), "hpvm run refuses the root\n" + w);
            for (String f : fragments) {
                assertTrue(w.stderr().contains(f), "the refusal names '" + f + "': " + w.stderr());
            }
            assertTrue(w.stderr().lines().count() == 1, "one line: " + w.stderr());
        }
        Hpvm.Result ls = Hpvm.cmd(root, "ls");
        assertEquals(7, ls.code(), "hpvm ls refuses it too: " + ls);
        assertEquals(ls.toString(), Hpvm.viaNative(root, "ls").toString(), "the native client leaves it to Java");
    }

    /**
     * A root that becomes unsafe while a worker lives in it: the native client does not talk to that worker's
     * supervisor (the socket could be anyone's by now) and leaves the refusal to Java.
     */
    @Test
    void aRootLoosenedWhileAWorkerLivesIsNotUsedByEitherClient() throws IOException {
        Path root = dir.resolve("loosened");
        try (TestWorker w = TestWorker.start(root, List.of(), worker())) {
            SwapTest.ok(Hpvm.nativeOnly(root, "ls"));
            Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxrwxrwx"));
            Hpvm.Result n = Hpvm.nativeOnly(root, "ls");
            assertEquals(254, n.code(), "left to Java: " + n);
            // (Java's refusal is what runIsRefused checks: this JVM keeps the root it verified before.)
            Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwx------"));
            SwapTest.ok(Hpvm.nativeOnly(root, "ls"));
        }
    }

    static Set<String> contents(Path p) throws IOException {
        try (Stream<Path> s = Files.walk(p)) {
            return s.map(x -> p.relativize(x).toString()).collect(Collectors.toSet());
        }
    }

    @Test
    void aRootAnotherUserMadeIsRefusedWhateverItsMode() throws IOException {
        OtherUser.require();
        Path root = shm.resolve("hpvm-0");
        OtherUser.sh("mkdir -m 0777 " + root);
        runIsRefused(root, root.toString(), OtherUser.NAME, "0777", "not by you", "HPVM_SESSION_ROOT");
        assertEquals(Set.of(""), contents(root), "nothing was made in the other user's directory");
    }

    @Test
    void aFileThereIsRefusedNamingItsOwner() {
        OtherUser.require();
        Path root = shm.resolve("hpvm-0");
        OtherUser.sh("echo planted > " + root);
        runIsRefused(root, root.toString(), "a regular file", OtherUser.NAME, "not a directory");
    }

    @Test
    void aLinkToTheVictimsDirectoryIsRefusedAndNothingThereIsDeleted() throws IOException {
        OtherUser.require();
        Path victim = Files.createDirectories(dir.resolve("victim"));
        for (int pid = 100; pid < 200; pid++) {
            Files.writeString(Files.createDirectories(victim.resolve(Integer.toString(pid))).resolve("precious"),
                "data");
        }
        Set<String> before = contents(victim);
        Path root = shm.resolve("hpvm-0");
        OtherUser.sh("ln -s " + victim + " " + root);
        runIsRefused(root, root.toString(), "symbolic link owned by " + OtherUser.NAME);
        assertEquals(before, contents(victim), "the victim's directory is untouched");
    }

    @Test
    void aRootInsideADirectoryAnotherUserCanWriteIsRefused() {
        OtherUser.require();
        Path theirs = shm.resolve("theirs");
        OtherUser.sh("mkdir -m 0777 " + theirs);
        runIsRefused(theirs.resolve("sessions"), theirs.toString(), OtherUser.NAME, "0777",
            "lets another user replace");
    }

    @Test
    void ownRootWithALooseModeIsRefusedWithTheFix() throws IOException {
        Path root = Files.createDirectory(dir.resolve("loose"));
        Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
        runIsRefused(root, root.toString(), "mode 0755", "chmod 700 " + root);
    }

    @Test
    void aRootThroughTheUsersOwnSymbolicLinkWorks() throws IOException {
        Path real = dir.resolve("real-root");
        Path link = Files.createSymbolicLink(dir.resolve("link-root"), real);
        Path patch = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        try (TestWorker w = TestWorker.start(link, List.of(), worker())) {
            assertTrue(w.stderr().contains("session " + real.resolve(Integer.toString(w.pid()))), w.stderr());
            Hpvm.Result ls = SwapTest.ok(Hpvm.cmd(link, "ls", "--sessions"));
            assertTrue(ls.out().contains(w.pid() + " ") && ls.out().contains("live"), "live, not stale: " + ls);
            SwapTest.ok(Hpvm.cmd(link, "swap", "compute", patch.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped through the linked root");
            SwapTest.ok(Hpvm.cmd(link, "rollback", "compute"));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 2, "rolled back through the linked root");
            assertEquals(254, Hpvm.nativeOnly(link, "ls").code(), "the native client follows no link: Java does");
            SwapTest.ok(Hpvm.viaNative(link, "swap", "compute", patch.toString()));
            SwapTest.assertBehaviour(w, w.mark(), (i, z) -> i * 3, "swapped through the linked root, via bin/hpvm");
        }
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(real)));
    }

    @Test
    void aLeftoverSessionDirectoryHoldingForeignFilesIsNotDeleted() throws IOException {
        Path root = dir.resolve("sessions");
        SwapTest.ok(Hpvm.cmd(root, "ls")); // makes the root, verified
        Path stale = Files.createDirectory(root.resolve("4000001"));
        Files.writeString(stale.resolve("slots"), "left by a killed supervisor");
        Path notes = Files.writeString(stale.resolve("notes.txt"), "the user's own file");
        io.hpvm.runtime.linux.SystemException e = assertThrows(io.hpvm.runtime.linux.SystemException.class,
            () -> SessionDir.create(4000001));
        assertTrue(e.getMessage().contains(stale.toString()) && e.getMessage().contains("files hpvm did not make"),
            e.getMessage());
        assertTrue(Files.exists(notes), "what hpvm did not make is left alone");
    }
}
