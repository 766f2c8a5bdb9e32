package io.hpvm.runtime;

import io.hpvm.loader.ElfImage;
import io.hpvm.testing.Gcc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * docs/fleet.md's script, examples/fleet/hpvm-fleet-swap, against three "hosts": workers under three session
 * roots, reached through an ssh and an scp that run locally (the script takes them from $SSH and $SCP), with the
 * real hpvm. One patch goes to every host whose worker has the build it was made for, once: run again, it changes
 * nothing and says so per host.
 */
class FleetScriptTest {

    @TempDir
    Path dir;

    static Path script(Path dir, String name, String body) throws Exception {
        Path p = dir.resolve(name);
        Files.writeString(p, "#!/usr/bin/env bash\n" + body);
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
        return p;
    }

    static String quoted(List<String> words) {
        return words.stream().map(w -> "'" + w.replace("'", "'\\''") + "'").collect(Collectors.joining(" "));
    }

    /** Runs the script with the fake ssh and scp; returns exit status and stdout. */
    Hpvm.Result fleet(Map<String, String> env, String... args) throws Exception {
        Path fleetScript = LuaRealProgramTest.ROOT.resolve("examples/fleet/hpvm-fleet-swap");
        List<String> cmd = new java.util.ArrayList<>(List.of(fleetScript.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor(120, TimeUnit.SECONDS);
        return new Hpvm.Result(p.exitValue(), out, err);
    }

    @Test
    void onePatchGoesToEveryHostOfItsBuildOnce() throws Exception {
        Path exe = Gcc.executable(dir, "svc", SwapTest.LOOP_WORKER, "-O2");
        Path other = Gcc.executable(dir, "svc_other", SwapTest.LOOP_WORKER.replace("x * 2", "x * 7"), "-O2");
        Path fix = Gcc.object(dir, "fix", "long compute(long x) { return x * 3; }\n", "-O2");
        String buildId = ElfImage.read(exe).buildId();
        Path hosts = dir.resolve("hosts");
        Path remote = Files.createDirectories(dir.resolve("remote"));
        Path hpvm = script(dir, "hpvm", "exec " + quoted(TestWorker.hpvmCommand()) + " \"$@\"\n");
        Path ssh = script(dir, "fake-ssh", "host=$1; shift\nHPVM_SESSION_ROOT='" + hosts + "'/$host exec bash -c "
            + "\"$*\"\n");
        Path scp = script(dir, "fake-scp", "[ \"$1\" = -q ] && shift\nexec cp \"$1\" \"${2#*:}\"\n");
        Map<String, String> env = Map.of("SSH", ssh.toString(), "SCP", scp.toString(), "HPVM", hpvm.toString(),
            "REMOTE_DIR", remote.toString());
        try (TestWorker a = TestWorker.start(hosts.resolve("a"), List.of(), exe);
             TestWorker b = TestWorker.start(hosts.resolve("b"), List.of(), exe);
             TestWorker c = TestWorker.start(hosts.resolve("c"), List.of(), other)) {
            for (TestWorker w : List.of(a, b, c)) {
                w.awaitLines(0, 1, SwapTest.WAIT);
            }
            Hpvm.Result first = fleet(env, "--build-id", buildId, "compute", fix.toString(), "--", "a", "b", "c");
            List<String> lines = first.out().lines().toList();
            assertEquals(3, lines.size(), first.toString());
            assertEquals("a: swapped compute v0 -> v1", lines.get(0), first.toString());
            assertEquals("b: swapped compute v0 -> v1", lines.get(1), first.toString());
            assertEquals("c: refused: the worker's build-id is " + ElfImage.read(other).buildId() + ", the patch is "
                + "for " + buildId, lines.get(2), first.toString());
            assertEquals(1, first.code(), "one host does not run the patch: " + first);
            SwapTest.assertBehaviour(a, a.mark(), (i, z) -> i * 3, "host a patched");
            SwapTest.assertBehaviour(b, b.mark(), (i, z) -> i * 3, "host b patched");
            SwapTest.assertBehaviour(c, c.mark(), (i, z) -> i * 7, "host c left alone");

            Hpvm.Result again = fleet(env, "--build-id", buildId, "compute", fix.toString(), "--", "a", "b");
            assertEquals(List.of("a: already applied (compute v1)", "b: already applied (compute v1)"),
                again.out().lines().toList(), again.toString());
            assertEquals(0, again.code(), again.toString());
            Hpvm.Result ls = Hpvm.cmd(hosts.resolve("a"), "ls");
            assertEquals(true, ls.out().matches("(?s).*\\ncompute\\s+v1/1\\s.*"), "no second version:\n" + ls.out());
        }
    }
}
