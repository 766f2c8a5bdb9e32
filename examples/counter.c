/*
 * Example worker for the hpvm demo: a loop that calls a non-inlined function every 200 ms and prints what it
 * returns, plus a running total kept in a global that a patch keeps updating.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

long total;                         /* state that must survive a swap */

__attribute__((noinline)) long price(long qty)
{
    return qty * 10;                /* the bug: should apply a 10% discount above 5 units */
}

__attribute__((noinline)) void report(long i, long p)
{
    total += p;
    printf("tick %ld: price(%ld) = %ld  total = %ld\n", i, i % 10, p, total);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long ticks = argc > 1 ? atol(argv[1]) : -1;
    for (long i = 0; ticks < 0 || i < ticks; i++) {
        report(i, price(i % 10));
        usleep(200 * 1000);
    }
    return 0;
}
