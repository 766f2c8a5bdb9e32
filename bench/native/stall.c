/*
 * Stall benchmark worker: a thread runs a tight loop that calls tick() and records the largest gap between two
 * iterations, and how many gaps exceeded 20 us, 50 us, 200 us and 1 ms. Commands on stdin: "reset" (start a new
 * window), "report" (print "max_gap_ns N over_20us A over_50us B ..." for the window),
 * "quit". The bench swaps tick() while the loop runs and compares the largest gap with and without swaps, and with
 * a debugger attaching to write a variable.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile long max_gap;
volatile long over_20us, over_50us, over_200us, over_1ms;   /* gaps per threshold in the window */
volatile long reset_requested;
volatile int debugger_flag;     /* what the gdb comparison writes */
volatile long iterations;

__attribute__((noinline)) long tick(long x) { __asm__ volatile(""); return x + 1; }

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *loop(void *arg)
{
    long prev = now_ns(), x = 0;
    for (;;) {
        long t = now_ns();
        if (reset_requested) {
            reset_requested = 0;
            max_gap = 0;
            over_20us = over_50us = over_200us = over_1ms = 0;
            prev = t;
        }
        long g = t - prev;
        if (g > max_gap) max_gap = g;
        if (g > 20000) {
            over_20us++;
            if (g > 50000) over_50us++;
            if (g > 200000) over_200us++;
            if (g > 1000000) over_1ms++;
        }
        prev = t;
        x = tick(x);
        iterations = x;
    }
    return arg;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t th;
    pthread_create(&th, NULL, loop, NULL);
    char line[64];
    puts("ready");
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "reset", 5) == 0) {
            reset_requested = 1;
            while (reset_requested) { }
            puts("ok");
        } else if (strncmp(line, "report", 6) == 0) {
            printf("max_gap_ns %ld over_20us %ld over_50us %ld over_200us %ld over_1ms %ld iterations %ld\n",
                   max_gap, over_20us, over_50us, over_200us, over_1ms, iterations);
        } else if (strncmp(line, "quit", 4) == 0) {
            exit(0);
        }
    }
    return 0;
}
