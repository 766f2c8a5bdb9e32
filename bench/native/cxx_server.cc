// A C++ worker for the unwind-registration figure: handle() throws now and then, main() catches. The bench swaps
// handle() from objects built with -DSTEP=2 and -DSTEP=3; each swap registers the new code's unwind information.
#include <cstdio>
#include <stdexcept>
#include <unistd.h>
#ifndef STEP
#define STEP 1
#endif
__attribute__((noinline)) int handle(int x) {
    if (x % 7 == 0) throw std::runtime_error("seven");
    return x + STEP;
}
int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    long sum = 0, caught = 0;
    for (int i = 1; ; i++) {
        try { sum += handle(i); } catch (const std::exception &) { caught++; }
        if (i % 1000 == 0) std::printf("%d %ld %ld\n", i, sum, caught);
        usleep(1000);
    }
}
