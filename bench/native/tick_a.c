long tick(long x) { __asm__ volatile(""); return x + 1; }
