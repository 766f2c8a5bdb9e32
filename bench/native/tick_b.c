long tick(long x) { __asm__ volatile("nop"); return x + 1; }
