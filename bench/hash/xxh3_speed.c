/* XXH3-128 over a buffer already in memory, one thread: the ceiling for content hashing. Prints
 * the median GB/s of the runs (1 GB = 1e9 bytes). Usage: xxh3_speed [MiB] [runs] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 256;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (runs < 1 || runs > 100 || mib < 1)
        return 2;
    size_t n = mib << 20;
    unsigned char *buf = malloc(n);
    if (!buf)
        return 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 2654435761u >> 13);
    double rates[100];
    unsigned long long sink = 0;
    for (int r = 0; r < runs; r++) {
        double t = now_s();
        XXH128_hash_t h = XXH3_128bits(buf, n);
        double dt = now_s() - t;
        sink ^= h.low64;
        rates[r] = (double)n / dt / 1e9;
    }
    qsort(rates, (size_t)runs, sizeof(rates[0]), cmp);
    printf("%.2f %.2f %.2f %llx\n", rates[runs / 2], rates[0], rates[runs - 1], sink & 1);
    free(buf);
    return 0;
}
