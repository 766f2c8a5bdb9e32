/* The corrected price(): compiled with `gcc -O2 -c price_fix.c` and swapped into the running counter worker. */
#include <stdio.h>

long price(long qty)
{
    long p = qty * 10;
    if (qty > 5) {
        p = p * 9 / 10;
        printf("[patched] discount applied to %ld units\n", qty);
    }
    return p;
}
