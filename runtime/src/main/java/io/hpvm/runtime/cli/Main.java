package io.hpvm.runtime.cli;

import io.hpvm.runtime.Json;
import io.hpvm.runtime.ExitCode;
import io.hpvm.runtime.HpvmException;
import io.hpvm.runtime.session.CommandRequest;
import io.hpvm.runtime.session.SessionDir;
import io.hpvm.runtime.session.UnwindRegistrar;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;

/** The {@code hpvm} command line. */
@Command(name = "hpvm", mixinStandardHelpOptions = true, version = "hpvm 0.1.0",
    description = {"Hot-patching VM for running native x86-64 Linux programs.", "",
        "Start a program under hpvm, then replace any of its functions while it runs with the same function "
            + "compiled into an ELF object file (gcc -c)."},
    footerHeading = "%nExit codes:%n",
    footer = {"  0  success (hpvm run: the worker's own exit status, 128+N if killed by signal N)",
        "  2  bad command line", "  3  no such session", "  4  bad object or executable file",
        "  5  link failure", "  6  refused by a safety rule", "  7  system failure"})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** {@code hpvm} alone: usage on stderr, exit code 2. */
    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getErr());
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required");
    }

    /** The subcommands, in the order the usage lists them. */
    private static final Map<String, Supplier<Object>> COMMANDS = new LinkedHashMap<>();

    static {
        COMMANDS.put("run", RunCommand::new);
        COMMANDS.put("attach", AttachCommand::new);
        COMMANDS.put("detach", DetachCommand::new);
        COMMANDS.put("swap", SwapCommand::new);
        COMMANDS.put("patch", PatchCommand::new);
        COMMANDS.put("ls", LsCommand::new);
        COMMANDS.put("rollback", RollbackCommand::new);
        COMMANDS.put("compact", CompactCommand::new);
        COMMANDS.put("top", TopCommand::new);
        COMMANDS.put("warmup", WarmupCommand::new);
        COMMANDS.put("help", CommandLine.HelpCommand::new);
    }

    /**
     * Command-line models, built once per thread and per first word. picocli reads every command's annotations to
     * build a model (11-15 ms in the supervisor's warm JVM for the whole tree, tens of milliseconds in a new JVM), so
     * a command line that names a subcommand gets a model with that subcommand only; anything else (no command,
     * help, an unknown word, top-level options) gets the whole tree, so usage and errors list every command. Reusing
     * a model is what picocli supports: every option and parameter is reset to its initial value before each parse.
     * Per thread, because the annotated command objects hold one parse's values (the supervisor serves one command
     * at a time; its warm-up runs on its own thread).
     */
    private static final ThreadLocal<Map<String, CommandLine>> MODELS = ThreadLocal.withInitial(HashMap::new);

    private static CommandLine model(String[] args) {
        String first = args.length > 0 && COMMANDS.containsKey(args[0]) && !args[0].equals("help") ? args[0] : "";
        return MODELS.get().computeIfAbsent(first, only -> {
            CommandLine cl = new CommandLine(new Main());
            COMMANDS.forEach((name, command) -> {
                if (only.isEmpty() || only.equals(name)) {
                    cl.addSubcommand(name, command.get());
                }
            });
            if (cl.getSubcommands().containsKey("run")) {
                cl.getSubcommands().get("run").setStopAtPositional(true);
            }
            return cl;
        });
    }

    /** Runs the command line with the given streams and returns the exit code (tests call this in-process). */
    public static int execute(PrintStream out, PrintStream err, String... args) {
        System.setProperty("chronicle.analytics.disable", "true");
        CommandLine cl = model(args);
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            int code = ex instanceof HpvmException h ? h.code().value : 1;
            CommandLine.ParseResult sub = parseResult.subcommand();
            if (sub != null && sub.hasMatchedOption("--json")) {
                out.println(new Json().put("ok", false).put("command", sub.commandSpec().name()).put("exit_code", code)
                    .put("error", io.hpvm.loader.LoadException.oneLine(ex instanceof HpvmException ? ex.getMessage()
                        : "internal error (a bug in hpvm): " + ex)));
            }
            if (ex instanceof HpvmException h) {
                err.println("hpvm: error: " + h.getMessage());
                if (!h.detail().isEmpty()) {
                    err.println(h.detail());
                }
                if (Invocation.current().env("HPVM_DEBUG") != null) {
                    h.printStackTrace(err);
                }
                return h.code().value;
            }
            // A bug in hpvm, not in the user's input: one line to report, the stack trace on request.
            StackTraceElement top = ex.getStackTrace().length > 0 ? ex.getStackTrace()[0] : null;
            err.println(io.hpvm.loader.LoadException.oneLine("hpvm: internal error (a bug in hpvm; please report "
                + "this line): " + ex + (top == null ? "" : " at " + top) + (Invocation.current().env("HPVM_DEBUG") == null
                ? "; HPVM_DEBUG=1 shows the whole trace" : "")));
            if (Invocation.current().env("HPVM_DEBUG") != null) {
                ex.printStackTrace(err);
            }
            return 1;
        });
        cl.setParameterExceptionHandler((ex, args1) -> {
            err.println("hpvm: " + ex.getMessage());
            ex.getCommandLine().usage(err);
            return ExitCode.USAGE.value;
        });
        return cl.execute(args);
    }

    /**
     * Runs a thin client's command in the supervisor (see {@link ThinClient}): with the client's working directory
     * and environment, against the supervisor's own session, registering unwind information directly; returns what
     * it printed and its exit code.
     */
    static CommandRequest.Answer serve(CommandRequest request, SessionDir session, UnwindRegistrar registrar) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Invocation.forClient(request.cwd(), request.env(), session, registrar, () -> {
            try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
                 PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
                return execute(o, e, request.args().toArray(new String[0]));
            }
        });
        return new CommandRequest.Answer(code, out.toString(StandardCharsets.UTF_8),
            err.toString(StandardCharsets.UTF_8));
    }

    /**
     * What {@code hpvm ARGS} does: through the session's supervisor when one answers ({@link ThinClient}), else here.
     */
    public static int run(PrintStream out, PrintStream err, String... args) {
        int thin = ThinClient.run(args, out, err);
        return thin >= 0 ? thin : execute(out, err, args);
    }

    public static void main(String[] args) {
        System.exit(run(System.out, System.err, args));
    }
}
