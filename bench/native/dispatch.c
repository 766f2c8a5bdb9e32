/*
 * Dispatch-overhead benchmark worker: hpvm's bench runs it natively and under `hpvm run`, alternately, and
 * compares what it prints. Each measurement is repeated 5 times in the process and the fastest is printed: the
 * minimum is what the code costs, the rest is interference from the machine. Usage: dispatch MODE N, then it waits for a line on stdin (so hpvm's own start-up work
 * is over before it measures) and prints "ns_per_call X" (MODE empty, recursive) or "ns_per_op X" (mixed).
 *   empty      N calls to an empty non-inlined function in a tight loop
 *   handstub   the same loop through a hand-written `jmp [rip+slot]` stub (the design's floor, run natively)
 *   pointer    N calls to the empty function through a function pointer (reaches the entry, not a call site)
 *   recursive  fa(N) where fa and fb call each other twice per level (no loop the compiler can make of it)
 *   mixed      N "requests": format a key, hash it, look it up in a table, update a counter, sort now and then
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

__attribute__((noinline)) void empty(void) { __asm__ volatile(""); }
void (*volatile empty_ptr)(void) = empty;

/* The design's floor, measured natively: the same loop calling a hand-written `jmp [rip+slot]` stub. */
void *hand_slot = (void *) empty;
void hand_stub(void);
__asm__(".text\n.p2align 4\n.globl hand_stub\n.type hand_stub, @function\nhand_stub:\n"
        "    jmp *hand_slot(%rip)\n.size hand_stub, .-hand_stub\n");

long fb(long n);
__attribute__((noinline)) long fa(long n) { return n < 2 ? n : fb(n - 1) + fb(n - 2); }
__attribute__((noinline)) long fb(long n) { return n < 2 ? n : fa(n - 1) + fa(n - 2); }

#define TABLE 1024
struct entry { char key[24]; long count; };
static struct entry table[TABLE];

__attribute__((noinline)) unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s) h = (h ^ (unsigned char) *s++) * 16777619u;
    return h;
}

__attribute__((noinline)) struct entry *lookup(const char *key)
{
    unsigned i = hash(key) & (TABLE - 1);
    while (table[i].key[0] && strcmp(table[i].key, key) != 0) i = (i + 1) & (TABLE - 1);
    if (!table[i].key[0]) strcpy(table[i].key, key);
    return &table[i];
}

static int cmp(const void *a, const void *b) { long x = *(const long *) a, y = *(const long *) b; return (x > y) - (x < y); }

__attribute__((noinline)) long handle(long i)
{
    char key[24];
    snprintf(key, sizeof key, "user-%ld", (i * 7919) % 500);
    struct entry *e = lookup(key);
    e->count++;
    if (i % 64 == 0) {
        long v[16];
        for (int k = 0; k < 16; k++) v[k] = (i * (k + 3)) % 101;
        qsort(v, 16, sizeof v[0], cmp);
        return e->count + v[8];
    }
    return e->count;
}

static long calls(long n) { return n < 2 ? 1 : 1 + calls(n - 1) + calls(n - 2); }

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: dispatch empty|recursive|mixed N\n"); return 2; }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 3;
    double best = 1e300;
    long sink = 0;
    int kind = strcmp(mode, "empty") == 0 ? 0 : strcmp(mode, "recursive") == 0 ? 1
        : strcmp(mode, "handstub") == 0 ? 3 : strcmp(mode, "pointer") == 0 ? 4 : 2;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns(), per;
        if (kind == 0) {
            for (long i = 0; i < n; i++) empty();
            per = (now_ns() - t0) / n;
        } else if (kind == 4) {
            for (long i = 0; i < n; i++) empty_ptr();
            per = (now_ns() - t0) / n;
        } else if (kind == 3) {
            for (long i = 0; i < n; i++) hand_stub();
            per = (now_ns() - t0) / n;
        } else if (kind == 1) {
            sink += fa(n);
            per = (now_ns() - t0) / calls(n);
        } else {
            for (long i = 0; i < n; i++) sink += handle(i);
            per = (now_ns() - t0) / n;
        }
        if (per < best) best = per;
    }
    printf("%s %.4f\n", kind == 2 ? "ns_per_op" : "ns_per_call", best);
    fprintf(stderr, "checksum %ld\n", sink);
    return 0;
}
