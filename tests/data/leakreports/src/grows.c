/* Grows by mmap (like an allocator that takes pages straight from the kernel) for massif
 * --pages-as-heap=yes. Build: gcc -g -O0 grows.c -o grows; run: ./grows [ticks] (default 20).
 * Each tick grow_cache maps 1 MiB and keep_session maps 256 KiB, neither is ever unmapped. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* A macro, not a helper function, so each caller is its own allocation site in massif's tree. */
#define MAP_PAGES(n) do { \
    void *p_ = mmap(NULL, (n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); \
    if (p_ == MAP_FAILED) { perror("mmap"); exit(2); } \
    memset(p_, 1, (n)); \
} while (0)

__attribute__((noinline)) void grow_cache(void) { MAP_PAGES(1 << 20); }
__attribute__((noinline)) void keep_session(void) { MAP_PAGES(256 << 10); }

int main(int argc, char **argv) {
    int ticks = argc > 1 ? atoi(argv[1]) : 20;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (int i = 0; (ticks <= 0 || i < ticks) && !stop_requested; i++) {
        grow_cache();
        keep_session();
        usleep(20000);
    }
    printf("done\n");
    fflush(stdout);
    return 0;
}
