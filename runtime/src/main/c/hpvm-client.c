/*
 * hpvm-client: the native fast path of `hpvm swap`, `rollback`, `ls` and `patch`.
 *
 * Why native: a Java thin client (io.hpvm.runtime.cli.ThinClient) cannot get under the 0.15 s a command may take
 * end to end on the 2-core machines hpvm is measured on: a JVM that prints "hello" with class-data sharing already
 * takes 0.10-0.12 s there, and the client's own work in a cold JVM (finding the session, the JDK's first Unix socket,
 * which seeds a SecureRandom) adds 60-80 ms. This program does the same few steps in about a millisecond; the
 * session's supervisor does the work in its warm JVM, exactly as for the Java client, so results and exit codes are
 * the supervisor's own.
 *
 * It only takes the common case and hands everything else back to the Java code, which says what is wrong with
 * the usual messages (bin/hpvm reads the exit status):
 *   254  not handled here (help, version, a list of sessions, no session or several, a session root that is not
 *        plainly safe, anything unusual): run the command in Java as if this program did not exist;
 *   253  run the command in Java without asking a supervisor (the slow path; the line saying so, if any, has been
 *        printed).
 * Any other status is the command's own.
 *
 * Trust: the session root is checked exactly as SessionRoot does (every directory on the way owned by you or root
 * and not writable by others unless sticky; the root itself a directory of yours with mode 0700), except that any
 * symbolic link on the way is handed back to Java (254) rather than followed. A session counts only when its pid is
 * alive and maps the session's slot table (by device and inode), as SessionDir.isLive says.
 *
 * Wire format (CommandRequest.java): "command\n", then length-prefixed strings ("<decimal length>\n<bytes>"): the
 * working directory, the number of environment entries, the entries "NAME=value" (CC, CXX, HPVM_DEBUG when set),
 * the number of arguments, the arguments; the client half-closes. Answer: "exit N\n", then stdout and stderr as
 * two such strings.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { DECLINE = 254, DIRECT = 253, SYSTEM_FAILURE = 7 };

/* As ControlClient: longer than any command takes in the supervisor; the largest answer read. */
#define COMMAND_TIMEOUT_MS 600000L
#define MAX_ANSWER (64L << 20)

/* A growable byte buffer; an allocation failure ends the program (there is nothing sensible to hand back). */
struct buf {
    char *data;
    size_t len, cap;
};

static void reserve(struct buf *b, size_t more) {
    if (b->len + more <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) {
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) {
        fputs("hpvm: error: out of memory\n", stderr);
        exit(SYSTEM_FAILURE);
    }
    b->data = d;
    b->cap = cap;
}

static void add(struct buf *b, const char *bytes, size_t n) {
    reserve(b, n);
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

/* One length-prefixed string of the wire format. */
static void put(struct buf *b, const char *s) {
    char head[32];
    size_t n = strlen(s);
    int h = snprintf(head, sizeof head, "%zu\n", n);
    add(b, head, (size_t) h);
    add(b, s, n);
}

static void putf(struct buf *b, const char *fmt, ...) {
    char s[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    put(b, s);
}

static int all_digits(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

/*
 * The configured session root as a normalised absolute path ($HPVM_SESSION_ROOT, else /dev/shm/hpvm-UID), checked
 * as SessionRoot checks it; 0 when it is not plainly safe or not there (Java then says why, or makes it).
 */
static int session_root(char *out, size_t size) {
    uid_t me = getuid();
    const char *env = getenv("HPVM_SESSION_ROOT");
    char configured[PATH_MAX];
    if (env && *env) {
        if (env[0] != '/' || strlen(env) >= sizeof configured) {
            return 0; /* relative: Java resolves it against its working directory and says what it found */
        }
        snprintf(configured, sizeof configured, "%s", env);
    } else {
        snprintf(configured, sizeof configured, "/dev/shm/hpvm-%u", (unsigned) me);
    }
    size_t len = 0;
    out[0] = '\0';
    char *save = NULL;
    char *name = strtok_r(configured, "/", &save);
    if (!name) {
        return 0; /* "/" itself */
    }
    while (name) {
        char *next = strtok_r(NULL, "/", &save);
        if (!strcmp(name, ".") || !strcmp(name, "..")) {
            return 0;
        }
        int n = snprintf(out + len, size - len, "/%s", name);
        if (n < 0 || (size_t) n >= size - len) {
            return 0;
        }
        len += (size_t) n;
        struct stat st;
        if (lstat(out, &st) != 0 || S_ISLNK(st.st_mode)) {
            return 0;
        }
        if (next) {
            if (!S_ISDIR(st.st_mode) || (st.st_uid != me && st.st_uid != 0)
                || ((st.st_mode & 022) && !(st.st_mode & 01000))) {
                return 0;
            }
        } else if (!S_ISDIR(st.st_mode) || st.st_uid != me || (st.st_mode & 07777) != 0700) {
            return 0;
        }
        name = next;
    }
    return 1;
}

/* True when process pid is alive and maps ROOT/pid/slots (by device and inode): a reused pid does not. */
static int live(const char *root, long pid) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f) {
        return 0;
    }
    char stat[1024];
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    char *paren = strrchr(stat, ')');
    if (!paren || paren[1] != ' ' || paren[2] == '\0' || paren[2] == 'Z' || paren[2] == 'X') {
        return 0;
    }
    struct stat slots;
    snprintf(path, sizeof path, "%s/%ld/slots", root, pid);
    if (lstat(path, &slots) != 0) {
        return 0;
    }
    char dev[32];
    snprintf(dev, sizeof dev, "%02x:%02x", major(slots.st_dev), minor(slots.st_dev));
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    f = fopen(path, "re");
    if (!f) {
        return 0;
    }
    char line[PATH_MAX + 256];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char mdev[32];
        unsigned long long inode;
        if (sscanf(line, "%*s %*s %*s %31s %llu", mdev, &inode) == 2 && inode == (unsigned long long) slots.st_ino
            && !strcmp(mdev, dev)) {
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* The session the command acts on (the one of pid, else the only live one), or -1 when Java must decide. */
static long find_session(const char *root, long want) {
    DIR *d = opendir(root);
    if (!d) {
        return -1;
    }
    uid_t me = getuid();
    long found = -1;
    int live_count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!all_digits(e->d_name, 9)) {
            continue;
        }
        long pid = strtol(e->d_name, NULL, 10);
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != me) {
            continue;
        }
        if (want >= 0 ? pid == want && live(root, pid) : live(root, pid)) {
            found = pid;
            live_count++;
        }
    }
    closedir(d);
    return live_count == 1 ? found : -1;
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long) t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Parses one length-prefixed string at *at; 0 when the answer is incomplete or malformed. */
static int get(const struct buf *b, size_t *at, const char **s, size_t *n) {
    size_t i = *at;
    size_t v = 0;
    size_t start = i;
    while (i < b->len && b->data[i] >= '0' && b->data[i] <= '9' && i - start < 12) {
        v = v * 10 + (size_t) (b->data[i++] - '0');
    }
    if (i == start || i >= b->len || b->data[i] != '\n' || v > b->len - i - 1) {
        return 0;
    }
    *s = b->data + i + 1;
    *n = v;
    *at = i + 1 + v;
    return 1;
}

static void write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* a closed pipe: nothing else to do with the output */
        }
        s += w;
        n -= (size_t) w;
    }
}

int main(int argc, char **argv) {
    static const char *const served[] = {"swap", "rollback", "ls", "patch", "compact", "detach"};
    if (argc < 2 || getenv("HPVM_DIRECT")) {
        return DECLINE;
    }
    int known = 0;
    for (size_t i = 0; i < sizeof served / sizeof *served; i++) {
        known |= !strcmp(argv[1], served[i]);
    }
    if (!known) {
        return DECLINE;
    }
    /* The same reading of the command line as ThinClient's: only what decides which session, or none. */
    long pid = -1;
    int sessions = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "-V") || !strcmp(a, "--version")) {
            return DECLINE;
        }
        sessions |= !strcmp(a, "--sessions");
        const char *value = NULL;
        if (!strcmp(a, "--pid") && i + 1 < argc) {
            value = argv[i + 1];
        } else if (!strncmp(a, "--pid=", 6)) {
            value = a + 6;
        }
        if (value) {
            if (!all_digits(value, 9)) {
                return DECLINE;
            }
            pid = strtol(value, NULL, 10);
        }
    }
    if (!strcmp(argv[1], "ls") && pid < 0 && sessions) {
        return DECLINE;
    }
    char root[PATH_MAX];
    if (!session_root(root, sizeof root)) {
        return DECLINE;
    }
    long session = find_session(root, pid);
    if (session < 0) {
        return DECLINE;
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/%ld", root, session);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/control", dir);
    if (n < 0 || (size_t) n >= sizeof addr.sun_path) {
        return DECLINE;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return DECLINE;
    }
    if (connect(fd, (struct sockaddr *) &addr, sizeof addr) != 0) {
        fprintf(stderr, "hpvm: no supervisor answers on %s (%s); doing the work in this process instead (the slow "
            "path)\n", addr.sun_path, strerror(errno));
        return DIRECT;
    }

    struct buf req = {0};
    add(&req, "command\n", 8);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
        return DECLINE;
    }
    put(&req, cwd);
    static const char *const variables[] = {"CC", "CXX", "HPVM_DEBUG"};
    int nenv = 0;
    for (size_t i = 0; i < 3; i++) {
        nenv += getenv(variables[i]) != NULL;
    }
    putf(&req, "%d", nenv);
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(variables[i]);
        if (v) {
            struct buf kv = {0};
            add(&kv, variables[i], strlen(variables[i]));
            add(&kv, "=", 1);
            add(&kv, v, strlen(v) + 1);
            put(&req, kv.data);
            free(kv.data);
        }
    }
    putf(&req, "%d", argc - 1);
    for (int i = 1; i < argc; i++) {
        put(&req, argv[i]);
    }

    /* Send, half-close, read the answer until the end of the stream. */
    const char *failure = NULL;
    for (size_t sent = 0; sent < req.len && !failure;) {
        ssize_t w = send(fd, req.data + sent, req.len - sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EINTR) {
            failure = strerror(errno);
        } else if (w > 0) {
            sent += (size_t) w;
        }
    }
    if (!failure && shutdown(fd, SHUT_WR) != 0) {
        failure = strerror(errno);
    }
    struct buf ans = {0};
    long long deadline = now_ms() + COMMAND_TIMEOUT_MS;
    while (!failure && ans.len < (size_t) MAX_ANSWER) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int) left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        reserve(&ans, 65536);
        ssize_t got = r > 0 ? read(fd, ans.data + ans.len, ans.cap - ans.len) : 0;
        if (got < 0 && errno != EINTR) {
            failure = strerror(errno);
        } else if (got == 0 && r > 0) {
            break;
        } else if (got > 0) {
            ans.len += (size_t) got;
        }
    }
    close(fd);
    if (failure) {
        fprintf(stderr, "hpvm: error: talking to the supervisor of session %s: %s; what it did is unknown: check with "
            "'hpvm ls'\n", dir, failure);
        return SYSTEM_FAILURE;
    }
    /* "exit N\n", then stdout and stderr. */
    const char *out = NULL, *err = NULL;
    size_t out_n = 0, err_n = 0, at = 0;
    long code = 0;
    int ok = ans.len > 5 && !memcmp(ans.data, "exit ", 5);
    if (ok) {
        char *end;
        reserve(&ans, 1);
        ans.data[ans.len] = '\0';
        code = strtol(ans.data + 5, &end, 10);
        ok = end != ans.data + 5 && *end == '\n' && end - ans.data <= 33;
        at = (size_t) (end - ans.data) + 1;
    }
    ok = ok && get(&ans, &at, &out, &out_n) && get(&ans, &at, &err, &err_n);
    if (!ok) {
        fprintf(stderr, "hpvm: error: the supervisor of session %s gave no complete answer to '", dir);
        for (int i = 1; i < argc; i++) {
            fprintf(stderr, "%s%s", i > 1 ? " " : "", argv[i]);
        }
        fputs("' (it may have exited meanwhile); what it did is unknown: check with 'hpvm ls'\n", stderr);
        return SYSTEM_FAILURE;
    }
    if (code < 0) {
        return DIRECT; /* a supervisor that does not run commands */
    }
    write_all(1, out, out_n);
    write_all(2, err, err_n);
    return (int) (code & 0xff);
}
