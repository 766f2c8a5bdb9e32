package io.hpvm.runtime.cli;

import io.hpvm.runtime.Json;
import io.hpvm.loader.Elf;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.session.FunctionRecord;
import io.hpvm.runtime.session.Registry;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.SessionInfo;
import io.hpvm.runtime.session.VersionRecord;
import io.hpvm.runtime.swap.SwapEngine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Comparator;
import java.util.List;

/** {@code hpvm ls}. */
@Command(name = "ls", mixinStandardHelpOptions = true,
    description = {"List workers running under hpvm, or the functions of one: name, current version, the address "
        + "its slot points at, and how many call sites were rewritten to its stub.",
        "With one worker running (or --pid), shows its functions; with several, lists the workers."})
final class LsCommand extends SessionCommand {

    @Option(names = "--patched", description = "Only functions that have been swapped at least once.")
    boolean patchedOnly;

    @Option(names = "--sessions", description = "List the workers, even when only one runs.")
    boolean sessionsOnly;

    @Override
    public Integer call() throws Exception {
        if (Invocation.current().session() == null && pid == null) {
            List<SessionDir> all = SessionDir.list();
            if (sessionsOnly || all.stream().filter(SessionDir::isLive).count() != 1) {
                listSessions(all);
                return 0;
            }
        }
        SessionDir s = session();
        try (Registry reg = s.openRegistry()) {
            SessionInfo info = new SwapEngine(s).checkedSession(reg);
            List<FunctionRecord> fns = reg.functions();
            fns.sort(Comparator.comparing(FunctionRecord::name));
            long patched = fns.stream().filter(f -> f.versions() > 1).count();
            List<Integer> procs = s.processes();
            if (json) {
                List<Json> functions = new java.util.ArrayList<>();
                for (FunctionRecord f : fns) {
                    if (!patchedOnly || f.versions() > 1) {
                        VersionRecord v = f.current() > 0 ? reg.version(f.name(), f.current()) : null;
                        functions.add(new Json().put("name", f.name()).put("version", f.current())
                            .put("versions", f.versions()).put("address", Elf.hex(SwapEngine.addressOf(reg, f,
                                f.current()))).put("call_sites", f.callSites())
                            .put("entry_redirected", f.entryRedirected())
                            .put("entry_note", f.entryRedirected() ? null : f.entryNote())
                            .put("thunk", v != null && v.preserved() != 0)
                            .put("object", v == null ? null : v.object())
                            .put("sha256", v == null || v.digest().isEmpty() ? null : v.digest())
                            .put("state", f.state()));
                    }
                }
                emit(result().put("pid", info.pid()).put("executable", info.executable())
                    .put("build_id", info.buildId()).put("functions_total", info.functions())
                    .put("call_sites", info.callSites())
                    .put("patched", patched).put("arena_used", info.arenaNext() - info.arenaStart())
                    .put("arena_size", info.code() + info.codeSize() - info.arenaStart()).put("processes", procs)
                    .put("functions", functions));
                return 0;
            }
            out().printf("worker %d  %s  %d functions, %d call sites rewritten, %d patched, arena %d of %d "
                    + "bytes used%n", info.pid(), info.executable(), info.functions(), info.callSites(), patched,
                info.arenaNext() - info.arenaStart(), info.code() + info.codeSize() - info.arenaStart());
            if (procs.size() > 1) {
                out().println("processes sharing this session (the worker and its forked children): "
                    + String.join(", ", procs.stream().map(String::valueOf).toList()));
            }
            out().printf("%-32s %-9s %-18s %6s  %s%n", "FUNCTION", "VERSION", "ADDRESS", "SITES", "ROUTE");
            for (FunctionRecord f : fns) {
                if (patchedOnly && f.versions() <= 1) {
                    continue;
                }
                long at = SwapEngine.addressOf(reg, f, f.current());
                String version = "v" + f.current() + (f.versions() > 1 ? "/" + (f.versions() - 1) : "");
                VersionRecord v = f.current() > 0 ? reg.version(f.name(), f.current()) : null;
                String route = (f.entryRedirected() ? "entry + call sites"
                    : f.callSites() > 0 ? "call sites only (entry: " + f.entryNote() + ")"
                    : "none: direct calls only reach it (entry: " + f.entryNote() + ")")
                    + (v != null && v.preserved() != 0 ? ", via register-preserving thunk" : "")
                    + (f.compacted() ? "; compacted (direct calls)" : "");
                out().printf("%-32s %-9s %-18s %6d  %s%n", f.name(), version, Elf.hex(at), f.callSites(), route);
            }
        }
        return 0;
    }

    private void listSessions(List<SessionDir> all) throws HpvmException {
        if (json) {
            for (SessionDir s : all) {
                emit(sessionJson(s));
            }
            return;
        }
        if (all.isEmpty()) {
            out().println("no workers are running under hpvm (" + SessionDir.root() + " is empty)");
            return;
        }
        out().printf("%-8s %-6s %9s %8s  %s%n", "PID", "STATE", "FUNCTIONS", "PATCHED", "EXECUTABLE");
        for (SessionDir s : all) {
            if (!s.isLive()) {
                out().printf("%-8d %-6s %9s %8s  %s%n", s.pid(), "stale", "-", "-", "(remove with: rm -r "
                    + s.dir() + ")");
                continue;
            }
            try (Registry reg = s.openRegistry()) {
                SessionInfo info = reg.session();
                long patched = reg.functions().stream().filter(f -> f.versions() > 1).count();
                out().printf("%-8d %-6s %9d %8d  %s%n", s.pid(), "live", info.functions(), patched,
                    info.executable());
            } catch (HpvmException e) {
                // One unreadable session must not hide the others.
                out().printf("%-8d %-6s %9s %8s  %s%n", s.pid(), "broken", "-", "-", "(" + e.getMessage() + ")");
            }
        }
    }

    /** One session of the list as JSON: {@code state} live, stale or broken (with {@code reason}). */
    private Json sessionJson(SessionDir s) {
        Json j = result().put("pid", s.pid()).put("session", s.dir().toString());
        if (!s.isLive()) {
            return j.put("state", "stale");
        }
        try (Registry reg = s.openRegistry()) {
            SessionInfo info = reg.session();
            return j.put("state", "live").put("executable", info.executable()).put("build_id", info.buildId())
                .put("functions_total",
                info.functions()).put("patched", reg.functions().stream().filter(f -> f.versions() > 1).count());
        } catch (HpvmException e) {
            return j.put("state", "broken").put("reason", e.getMessage());
        }
    }
}
