/* A small C process whose memory follows one pattern; sampled by zcnb's sampler (record.py).
 *
 *   cc -O2 -o leak leak.c -lm && ./leak MODE RATE_KIB_S [CACHE_MIB TAU_S]
 *
 * linear: malloc + memset RATE KiB every second, in 10 ticks, never freed.
 * decel:  a bounded cache that fills as CACHE_MIB * (1 - exp(-t / TAU_S)) and then stays.
 * Every tick also allocates and frees a random short-lived buffer (noise). Runs until killed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1];
    double rate = atof(argv[2]) * 1024.0;
    double cache = argc > 3 ? atof(argv[3]) * 1048576.0 : 0;
    double tau = argc > 4 ? atof(argv[4]) : 20.0;
    double start = now(), owed = 0, held = 0;
    srand(7);
    for (;;) {
        double t = now() - start;
        size_t n = 0;
        if (strcmp(mode, "linear") == 0) {
            owed += rate * 0.1;
            if (owed >= 4096) { n = (size_t)owed; owed = 0; }
        } else if (strcmp(mode, "decel") == 0) {
            double target = cache * (1.0 - exp(-t / tau));
            if (target - held >= 65536) { n = (size_t)(target - held); held += n; }
        }
        if (n) { char *p = malloc(n); if (p) memset(p, 1, n); }
        size_t noise = (size_t)(rand() % (512 * 1024)) + 4096;
        char *q = malloc(noise);
        if (q) { memset(q, 2, noise); free(q); }
        usleep(100000);
    }
}
