/* A small multi-file program with static state in every file: the fixture for patching one file of many. */
#ifndef SHOP_H
#define SHOP_H

long take_order(int item, long qty);   /* orders.c */
long orders_served(void);
long quote(int item, long qty);        /* pricing.c */
long quotes_made(void);
void reserve(int item, long qty);      /* inventory.c */
long stock_left(int item);

#endif
