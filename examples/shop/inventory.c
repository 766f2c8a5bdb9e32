#include "shop.h"

static long stock[4] = {100000, 100000, 100000, 100000};   /* file-static state */

void reserve(int item, long qty) {
    stock[item & 3] -= qty;
}

long stock_left(int item) {
    return stock[item & 3];
}
