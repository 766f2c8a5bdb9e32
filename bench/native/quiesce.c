/*
 * bench section 7, "--quiesce": eight threads that each call work() and then wait a millisecond, like a server's
 * workers between requests; `hpvm swap --quiesce work` must find a moment when none is inside it.
 *   gcc -O2 -pthread quiesce.c                 the worker
 *   gcc -O2 -c -DFIX quiesce.c                 work() alone, returning one more
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) long work(long x)
{
    long s = 0;
    for (long i = 0; i < 2000; i++) s += (x ^ i) * 3;
#ifdef FIX
    s += 1;
#endif
    return s;
}

#ifndef FIX
volatile long sink;

static void *worker(void *arg)
{
    (void) arg;
    for (long i = 0; ; i++) {
        sink += work(i);
        usleep(1000);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t t[8];
    for (int k = 0; k < 8; k++) pthread_create(&t[k], NULL, worker, NULL);
    printf("running\n");
    for (;;) pause();
}
#endif
