package io.hpvm.runtime.cli;

/**
 * The {@code hpvm} entry point. It refers to nothing but {@link ThinClient} until the thin client declines: a
 * command its session's supervisor runs (swap, rollback, ls, patch) then loads neither picocli nor any of hpvm's
 * machinery in this JVM, and {@code bin/hpvm} gives such commands a class-data-sharing archive of just these classes.
 */
public final class Hpvm {

    private Hpvm() {
    }

    /**
     * The exit code by which a JVM started with only the client's archive asks {@code bin/hpvm} to run the command
     * again in a JVM with the full one (with {@code HPVM_DIRECT} set): the work then happens here after all, and the
     * full archive starts it about half a second sooner than the small one would.
     */
    static final int RELAUNCH = 254;

    public static void main(String[] args) {
        int thin = ThinClient.run(args, System.out, System.err);
        if (thin < 0 && Boolean.getBoolean("hpvm.client-archive")) {
            System.exit(RELAUNCH);
        }
        System.exit(thin >= 0 ? thin : Main.execute(System.out, System.err, args));
    }
}
