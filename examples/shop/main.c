#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "shop.h"

/* Takes an order every 20 ms (forever, or N orders with an argument) and prints what every file's state says. */
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    long n = argc > 1 ? atol(argv[1]) : -1;
    for (long i = 0; n < 0 || i < n; i++) {
        int item = (int) (i % 4);
        long qty = 1 + i % 3;
        long total = take_order(item, qty);
        printf("order %ld item %d qty %ld total %ld served %ld quotes %ld stock %ld\n", i, item, qty, total,
               orders_served(), quotes_made(), stock_left(item));
        usleep(20000);
    }
    return 0;
}
