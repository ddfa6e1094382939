/* Leaks a known set of blocks, for real ASan/LSan/valgrind reports parsed by zcnb's tests.
 * Build: gcc -g -O0 -fno-omit-frame-pointer [-fsanitize=address|leak] leaky.c -o leaky
 * Run:   ./leaky            leak once and exit
 *        ./leaky serve      leak 100 bytes per tick until SIGINT/SIGTERM, then exit cleanly
 * Leaks (once): make_buffer 3 x 100 B (definitely/direct), make_node 1 x 16 B (definitely/direct)
 * owning a 32 B payload (indirect), an interior pointer to 64 B (possibly lost under valgrind),
 * a global pointer to 48 B (still reachable). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct node { char *payload; long id; };

static volatile sig_atomic_t stop_requested = 0;
static char *still_reachable_cache = NULL;
static char *interior_pointer = NULL;

static void on_signal(int sig) { (void)sig; stop_requested = 1; }

__attribute__((noinline)) char *make_buffer(size_t n) {
    char *p = malloc(n);
    memset(p, 'x', n);
    return p;
}

__attribute__((noinline)) struct node *make_node(void) {
    struct node *n = malloc(sizeof *n);
    n->payload = malloc(32);
    memset(n->payload, 'y', 32);
    n->id = 7;
    return n;
}

__attribute__((noinline)) void leak_once(void) {
    for (int i = 0; i < 3; i++) {
        char *b = make_buffer(100);
        b[0] = 'a';
    }
    struct node *n = make_node();
    n->id = 8;
    n = NULL;
    interior_pointer = make_buffer(64) + 8;
    still_reachable_cache = make_buffer(48);
}

int main(int argc, char **argv) {
    leak_once();
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        printf("serving\n");
        fflush(stdout);
        while (!stop_requested) {
            char *b = make_buffer(100);
            b[1] = 'b';
            usleep(50000);
        }
        printf("stopping\n");
    } else {
        printf("done\n");
    }
    fflush(stdout);
    return 0;
}
