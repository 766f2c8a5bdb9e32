package io.hpvm.runtime.session;

/**
 * Session metadata, stored in the registry under {@code session}.
 *
 * @param pid        the worker's pid
 * @param startTime  the worker's start time (/proc/PID/stat field 22), to detect pid reuse
 * @param executable path of the worker's executable as started
 * @param buildId    its GNU build-id ("" when none)
 * @param loadBias   run-time address minus link-time address of the executable
 * @param slots      where the worker maps the slot table
 * @param code       where the worker maps the code region
 * @param codeSize   size of the code region
 * @param arenaStart first arena byte (after the stubs)
 * @param arenaNext  arena bump pointer: the next free byte
 * @param functions  number of patchable functions (slots)
 * @param callSites  call sites rewritten at launch
 * @param created    epoch millis when the session was created
 * @param cflags     compiler flags given to {@code hpvm run --cflags}, used when a swap is given a .c file
 * @param attached   taken over by {@code hpvm attach} (the supervisor is not the worker's parent)
 * @param symbols    the separate debug file the program's symbols were read from ("" for its own): swaps read the
 *                   same symbols, so a stripped program's statics bind
 */
public record SessionInfo(int pid, long startTime, String executable, String buildId, long loadBias, long slots,
                          long code, long codeSize, long arenaStart, long arenaNext, int functions, int callSites,
                          long created, String cflags, boolean attached, String symbols) {

    String encode() {
        return new Fields().put("pid", pid).put("start", startTime).put("exe", executable).put("buildId", buildId)
            .put("bias", loadBias).put("slots", slots).put("code", code).put("codeSize", codeSize)
            .put("arenaStart", arenaStart).put("arenaNext", arenaNext).put("functions", functions)
            .put("sites", callSites).put("created", created).put("cflags", cflags).put("attached", attached ? 1 : 0)
            .put("symbols", symbols).encode();
    }

    static SessionInfo decode(String s) {
        Fields f = Fields.parse(s);
        return new SessionInfo(f.integer("pid"), f.num("start"), f.str("exe"), f.str("buildId"), f.num("bias"),
            f.num("slots"), f.num("code"), f.num("codeSize"), f.num("arenaStart"), f.num("arenaNext"),
            f.integer("functions"), f.integer("sites"), f.num("created"), f.str("cflags"), f.num("attached") != 0,
            f.str("symbols"));
    }

    public SessionInfo withArenaNext(long next) {
        return new SessionInfo(pid, startTime, executable, buildId, loadBias, slots, code, codeSize, arenaStart, next,
            functions, callSites, created, cflags, attached, symbols);
    }

    /** Bytes left in the arena. */
    public long arenaFree() {
        return code + codeSize - arenaNext;
    }
}
