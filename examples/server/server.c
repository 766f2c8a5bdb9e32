/*
 * A small threaded TCP server for trying hpvm on something that serves traffic: one thread per connection, each
 * request line answered by respond(). Usage: server PORT.
 *
 *   gcc -O2 -g -pthread -o server server.c
 *   bin/hpvm run --cflags "-O2 -g" ./server 7000 &
 *   cp server.c server.c.orig; sed -i 's/(v1)/(v2)/' server.c; bin/hpvm patch server.c.orig server.c
 *
 * gcc inlines respond() into conn(), so the patch swaps both; connections already open keep running the old conn()
 * loop (calls in flight finish in the old code), new connections run the new one.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long served;

int respond(const char *req, char *out, size_t n) {
    return snprintf(out, n, "hello %s (v1)\n", req);
}

static void *conn(void *arg) {
    int fd = (int) (long) arg;
    char buf[256], out[512];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf - 1)) > 0) {
        buf[r] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
        int len = respond(buf, out, sizeof out);
        __atomic_add_fetch(&served, 1, __ATOMIC_RELAXED);
        if (write(fd, out, len) != len) {
            break;
        }
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *) &a, sizeof a) || listen(s, 64)) {
        perror("bind");
        return 1;
    }
    printf("listening on %s\n", argv[1]);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            continue;
        }
        pthread_t t;
        pthread_create(&t, NULL, conn, (void *) (long) c);
        pthread_detach(t);
    }
}
