/* The host twin of guest.c: the same workloads, printed the same way. */
#include <stdint.h>
#include <stdio.h>
void simd_work(uint64_t out[8]);
int main(void)
{
    uint64_t out[8];
    simd_work(out);
    for (int i = 0; i < 8; i++)
        printf("%d: 0x%016llx\n", i, (unsigned long long)out[i]);
    return 0;
}
