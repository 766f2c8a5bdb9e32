package io.hpvm.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** What the bench asks of the machine: CPU pinning (taskset), threads and memory of a process, a worker's report. */
final class Host {

    private Host() {
    }

    /** Thread ids of {@code pid} whose name ({@code comm}) is {@code name}. */
    static List<Long> threadsNamed(long pid, String name) {
        List<Long> out = new ArrayList<>();
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path t : tasks.toList()) {
                if (Files.readString(t.resolve("comm")).trim().equals(name)) {
                    out.add(Long.parseLong(t.getFileName().toString()));
                }
            }
        } catch (IOException e) {
            // the worker is gone: nothing to pin
        }
        return out;
    }

    /** Sets the CPU affinity of one thread; false when taskset is missing or refuses. */
    static boolean pinThread(long tid, String cpus) {
        return taskset("-p", "-c", cpus, Long.toString(tid));
    }

    /** Sets the CPU affinity of every thread of a process; false when taskset is missing or refuses. */
    static boolean pin(long pid, String cpus) {
        return taskset("-a", "-p", "-c", cpus, Long.toString(pid));
    }

    private static boolean taskset(String... args) {
        List<String> cmd = new ArrayList<>(List.of("taskset"));
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor() == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    static long field(String reportLine, String name) {
        String[] f = reportLine.split(" ");
        for (int i = 0; i + 1 < f.length; i++) {
            if (f[i].equals(name)) {
                return Long.parseLong(f[i + 1]);
            }
        }
        return 0;
    }

    static double gap(String reportLine) {
        return Long.parseLong(reportLine.split(" ")[1]) / 1e6;
    }

    static long rssKb(long pid) throws IOException {
        for (String l : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            if (l.startsWith("VmRSS:")) {
                return Long.parseLong(l.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }

    /**
     * Where a process's resident memory is, from {@code /proc/PID/smaps}: the class-data-sharing archive, libjvm,
     * other mapped files (libraries, jars), and anonymous memory (Java heap, metaspace, code cache, thread stacks,
     * malloc), in MiB.
     */
    static String rssBreakdown(long pid) throws IOException {
        long jsa = 0, jvm = 0, files = 0, anon = 0;
        String path = "";
        for (String l : Files.readAllLines(Path.of("/proc/" + pid + "/smaps"))) {
            String[] f = l.trim().split("\\s+");
            if (f.length >= 5 && f[0].contains("-") && f[0].matches("[0-9a-f]+-[0-9a-f]+")) {
                path = f.length >= 6 ? f[5] : "";
            } else if (f[0].equals("Rss:")) {
                long kb = Long.parseLong(f[1]);
                if (path.endsWith(".jsa")) {
                    jsa += kb;
                } else if (path.endsWith("libjvm.so")) {
                    jvm += kb;
                } else if (path.startsWith("/")) {
                    files += kb;
                } else {
                    anon += kb;
                }
            }
        }
        return String.format("CDS archive %d MiB, libjvm %d MiB, other files %d MiB, anonymous (heap, metaspace, code "
            + "cache, stacks, malloc) %d MiB", jsa / 1024, jvm / 1024, files / 1024, anon / 1024);
    }

    /** Bytes of tmpfs actually allocated to a (sparse) file. */
    /** Bytes of System V segment {@code id} in memory (the {@code rss} column of /proc/sysvipc/shm). */
    static long shmResident(int id) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc/sysvipc/shm"));
        List<String> header = List.of(lines.get(0).trim().split("\\s+"));
        for (String line : lines.subList(1, lines.size())) {
            String[] f = line.trim().split("\\s+");
            if (Integer.parseInt(f[header.indexOf("shmid")]) == id) {
                return Long.parseLong(f[header.indexOf("rss")]);
            }
        }
        throw new IOException("System V segment " + id + " is not in /proc/sysvipc/shm");
    }

    static long allocated(Path p) throws IOException, InterruptedException {
        Process du = new ProcessBuilder("du", "--block-size=1", p.toString()).start();
        String out = new String(du.getInputStream().readAllBytes()).trim();
        du.waitFor();
        return Long.parseLong(out.split("\\s+")[0]);
    }
}
