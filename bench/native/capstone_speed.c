/*
 * Capstone's own decoding speed on this machine, from C: cs_disasm without detail over a file range (the bench
 * passes libc's .text). The bench compares hpvm's Java decode path with it. The cs_* declarations are written here
 * so no -dev package is needed; the layout is Capstone 4's.
 * Usage: capstone_speed FILE OFFSET SIZE  ->  "mb_per_s X"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef size_t csh;
typedef struct {
    unsigned int id;
    uint64_t address;
    uint16_t size;
    uint8_t bytes[16];
    char mnemonic[32];
    char op_str[160];
    void *detail;
} cs_insn;
int cs_open(int arch, int mode, csh *handle);
size_t cs_disasm(csh handle, const uint8_t *code, size_t size, uint64_t address, size_t count, cs_insn **insn);
void cs_free(cs_insn *insn, size_t count);

int main(int argc, char **argv)
{
    if (argc < 4) return 2;
    FILE *f = fopen(argv[1], "rb");
    long off = strtol(argv[2], 0, 0), size = strtol(argv[3], 0, 0);
    uint8_t *code = malloc(size);
    if (!f || fseek(f, off, SEEK_SET) != 0 || fread(code, 1, size, f) != (size_t) size) return 3;
    csh h;
    if (cs_open(3 /* CS_ARCH_X86 */, 8 /* CS_MODE_64 */, &h) != 0) return 4;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long at = 0;
        while (at < size) {
            cs_insn *insn;
            size_t n = cs_disasm(h, code + at, size - at, 0x1000 + at, 4096, &insn);
            if (n == 0) { at++; continue; }
            for (size_t i = 0; i < n; i++) at += insn[i].size;
            cs_free(insn, n);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double mbs = size / 1e6 / ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (mbs > best) best = mbs;
    }
    printf("mb_per_s %.2f\n", best);
    return 0;
}
