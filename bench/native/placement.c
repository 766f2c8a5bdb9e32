/*
 * Where patch versions sit in the arena, and whether it matters (bench section 6, "placement"): a request handler
 * that calls 64 small functions, each of which the bench swaps for a copy of itself. Built three ways:
 *   gcc -O2 placement.c                          the worker: placement N, then one timed run per "go" line
 *   gcc -O2 -c -ffunction-sections -DVERSIONS    the 64 functions alone, the object every swap loads
 *   gcc -O2 -c -DPAD                             pad(): 40,000 bytes of code, swapped between two versions to
 *                                                scatter them (not a power of two, so they do not share cache sets)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define F(i) __attribute__((noinline)) long f##i(long x) { return x * (2 * i + 3) + i; }
#define F8(i) F(i##0) F(i##1) F(i##2) F(i##3) F(i##4) F(i##5) F(i##6) F(i##7)
#define C(i) s += f##i(n);
#define C8(i) C(i##0) C(i##1) C(i##2) C(i##3) C(i##4) C(i##5) C(i##6) C(i##7)

#ifdef PAD
long pad(long x)
{
    __asm__ volatile(".rept 40000\n\tnop\n\t.endr");
    return x;
}
#else
F8(1) F8(2) F8(3) F8(4) F8(5) F8(6) F8(7) F8(8)
#endif

#if !defined(PAD) && !defined(VERSIONS)
__attribute__((noinline)) long pad(long x) { return x + 1; }

__attribute__((noinline)) long handle(long n)
{
    long s = 0;
    C8(1) C8(2) C8(3) C8(4) C8(5) C8(6) C8(7) C8(8)
    return s;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: placement N (then one line on stdin per timed run)\n"); return 2; }
    long n = atol(argv[1]), sink = 0;
    char line[16];
    while (fgets(line, sizeof line, stdin)) {
        double best = 1e300;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_ns();
            for (long i = 0; i < n; i++) sink += handle(i);
            double per = (now_ns() - t0) / n;
            if (per < best) best = per;
        }
        printf("ns_per_op %.4f\n", best);
        fflush(stdout);
    }
    fprintf(stderr, "checksum %ld\n", sink);
    return 0;
}
#endif
