/* zcnb.logs._scan: one-pass native counter for stage-03 log summaries.
 *
 * Mirrors the per-line rules of zcnb.logs.scan / zcnb.logs.chunks / zcnb.logs exactly (short-iso prefix regex,
 * saved `journalctl -o json` lines as json.loads + entry_from_json read them, Zig level prefixes and the
 * gateway's plain lines (panics, "Connection error: ...", "Warn: ..."), skill:NAME tokens, "[agent] tool ..." /
 * "[heartbeat] " / "[ws] " tags, debug request lines, alloc/free/deinit mentions, pid changes, startup banners)
 * and hands raw tallies back to Python, which does the Unicode work (name normalisation, redaction, error
 * grouping by redacted text). Anything whose Python result it cannot reproduce for sure (an unusual timestamp
 * or JSON value) makes the scan return False with a reason, and the caller uses the Python engine instead.
 *
 * Speed: the file is read through mmap windows with the GIL released (byte ranges of one file run in threads);
 * one SIMD pass per message finds the line end and the only bytes that can start something ("l:" of skill:,
 * "["); a line whose second (19 bytes) and syslog prefix repeat the previous line's reuses its parse (only
 * the fraction digits are read); per-bucket counts go to a small dense array flushed at bucket changes, so
 * the result is a few flat arrays whatever the file size.
 */
#define _GNU_SOURCE /* memmem, memrchr */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ZC_X86 1
#endif

enum { MODE_ISO = 0, MODE_RAW = 1, MODE_JSON = 2, MODE_EXPORT = 3, MODE_SHORT = 4 };
#define MAX_LINE ((Py_ssize_t)4 << 20) /* zcnb.logs.message.MAX_LINE: longer lines are cut there (cut_line) */
enum { R_OK_ = 0, R_GAVE_WAY = 1, R_INCOMPLETE = 3, R_NOMEM = -1, R_IO = -2 };

/* ---------------------------------------------------------------- small helpers */
static inline int is_space(unsigned char c) { /* \s of a bytes regex */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_word(unsigned char c) { /* \w of a bytes regex */
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static inline int is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static inline int is_name(unsigned char c) { return is_word(c) || c == '-'; } /* [A-Za-z0-9_-]: SKILL_NAME_CHARS of zcnb/logs/skills.py */
static inline int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static inline int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static inline unsigned char lower(unsigned char c) { return is_upper(c) ? (unsigned char)(c + 32) : c; }

static inline int eq_bytes(const char *a, const char *b, size_t n);

static inline __attribute__((always_inline)) int has_prefix(const char *p, const char *e, const char *lit, size_t n) {
    return (size_t)(e - p) >= n && eq_bytes(p, lit, n); /* n is a constant at every call: compiled to word compares */
}

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* 16 bytes a step in two independent lanes (half the multiply chain of one lane: error lines are hashed whole);
 * short texts from two overlapping loads. Only equal texts need equal hashes: tables compare the bytes too. */
static uint64_t hash_mem(uint64_t seed, const char *s, size_t n) {
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL), g = rotl64(seed, 17) ^ 0xC2B2AE3D27D4EB4FULL, a, b;
    if (n >= 16) {
        const char *last = s + n - 16;
        while (s < last) {
            memcpy(&a, s, 8);
            memcpy(&b, s + 8, 8);
            h = (h ^ a) * 0x9E3779B97F4A7C15ULL;
            g = (g ^ b) * 0xC2B2AE3D27D4EB4FULL;
            h ^= h >> 32;
            g ^= g >> 29;
            s += 16;
        }
        memcpy(&a, last, 8); /* the last 16 bytes, overlapping the previous step */
        memcpy(&b, last + 8, 8);
    } else if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
    } else if (n >= 4) {
        uint32_t u, v;
        memcpy(&u, s, 4);
        memcpy(&v, s + n - 4, 4);
        a = u;
        b = v;
    } else {
        a = 0;
        for (size_t i = 0; i < n; i++) a |= (uint64_t)(unsigned char)s[i] << (8 * i);
        b = 0;
    }
    return mix64((h ^ a) * 0x9E3779B97F4A7C15ULL + rotl64(g ^ b, 31));
}

/* A cheap key of a text for the cache of recent lines: its length, first and last 16 bytes and 8 from the middle
 * (hash_mem of the whole text below 40 bytes). Texts alike there share a slot; the cache compares the bytes. */
static inline uint64_t sample_key(uint64_t seed, const char *s, size_t n) {
    if (n < 40) return hash_mem(seed, s, n);
    uint64_t w[5];
    memcpy(&w[0], s, 8);
    memcpy(&w[1], s + 8, 8);
    memcpy(&w[2], s + n / 2 - 4, 8);
    memcpy(&w[3], s + n - 16, 8);
    memcpy(&w[4], s + n - 8, 8);
    uint64_t h = (seed ^ (n * 0x9E3779B97F4A7C15ULL) ^ w[0]) * 0x9E3779B97F4A7C15ULL,
             g = (rotl64(seed, 17) ^ w[1]) * 0xC2B2AE3D27D4EB4FULL;
    h = (h ^ (h >> 32) ^ w[2]) * 0x9E3779B97F4A7C15ULL;
    g = (g ^ (g >> 29) ^ w[3]) * 0xC2B2AE3D27D4EB4FULL;
    return mix64((h ^ w[4]) * 0x9E3779B97F4A7C15ULL + rotl64(g, 31));
}

static inline __attribute__((always_inline)) int eq_bytes(const char *a, const char *b, size_t n) {
    /* memcmp(a, b, n) == 0, inlined */
    uint64_t x, y;
    if (n >= 4 && n < 8) {
        uint32_t u, v, u2, v2;
        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        memcpy(&u2, a + n - 4, 4);
        memcpy(&v2, b + n - 4, 4);
        return u == v && u2 == v2;
    }
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y) return 0;
        }
        memcpy(&x, a + n - 8, 8); /* the last 8 bytes (overlapping) */
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    while (n--) if (*a++ != *b++) return 0;
    return 1;
}

static inline int two(const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

static inline long long floor_div(long long a, long long b) {
    long long q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}

static char *dup_bytes(const char *p, Py_ssize_t n) {
    char *c = malloc(n ? (size_t)n : 1);
    if (c && n) memcpy(c, p, (size_t)n);
    return c;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) { /* capacity >= need, doubling */
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* ---------------------------------------------------------------- the scanner state */
/* a line's context: bucket, time (microseconds since the epoch: the float seconds Python sees are us / 1e6), pid */
typedef struct { int hasb; long long b; int hasts; long long us; int haspid; long long pid; } Ctx;

typedef struct { uint64_t h; char *s; Py_ssize_t n; long long total; char cat; } Col;
/* A short-iso line's bytes after the seconds (and fraction) through the ": " of its syslog prefix, and what they
 * mean: its time zone (the bytes before the first space, as a zero-padded word), another unit's line (skip), pid */
#define NTAILS 128 /* a hash table: a tail goes to one of two slots its hash picks */
#define TAIL_MAX 160
typedef struct { char text[TAIL_MAX]; Py_ssize_t n; uint64_t h, tzw; int skip, haspid; long long pid; } Tail;

typedef struct {
    uint64_t h; long long count, seq, first, last;
    char *scope; Py_ssize_t scope_n; char *norm; Py_ssize_t norm_n; char *ex; Py_ssize_t ex_n;
    int flags; char level; char kind; char hasts;
} Grp;

typedef struct { long long us; long long pid; long long seq; char *msg; Py_ssize_t msg_n; char hasts, haspid; } Crash;

/* Bounded memory whatever the log: at most MAX_GROUPS error/warning groups (the first shapes seen; later new shapes
 * are counted as "other" per level), keys of at most GROUP_KEY_MAX normalised bytes, examples of at most
 * EXAMPLE_MAX bytes (zcnb.logs.scan.MAX_GROUPS / GROUP_KEY_MAX / EXAMPLE_MAX). */
#define MAX_GROUPS 5000
#define GROUP_KEY_MAX 1024
#define EXAMPLE_MAX 4096
#define MAX_BANNERS 10000 /* startup banners kept (zcnb.logs.scan.MAX_BANNERS); the others counted */
#define MAX_CRASHES 10000 /* crash lines listed (zcnb.logs.scan.MAX_CRASHES); the others counted */
#define MAX_PIDS 10000 /* processes listed (zcnb.logs.scan.MAX_PIDS) */
#define RAW_SLOTS 4096 /* recent error/warning lines, verbatim (1 MiB) */
#define RAW_TEXT 248
typedef struct { uint64_t h; int32_t g; Py_ssize_t n; char text[RAW_TEXT]; } RawEnt;

typedef struct {
    PyObject_HEAD
    int mode, width;
    char *ident; Py_ssize_t ident_n; int has_ident;
    char *unit; Py_ssize_t unit_n; int has_unit;
    /* activity columns: (category, raw name) -> index, with totals; the fixed ones */
    Col *cols; size_t ncols, capcols;
    int32_t c_error, c_warning, c_unauth, c_heartbeat, c_ws;
    int32_t *colidx; size_t colcap;
    /* per-bucket counts: the current bucket's dense row, flushed as (bucket, column, count) triples */
    long long *bacc; size_t bacc_cap; int32_t *touched; size_t ntouched, touched_cap; int bopen; long long bcur;
    long long *ob; int32_t *oc; long long *on; size_t nout, cap_ob, cap_oc, cap_on;
    /* error/warning groups (whole scan) */
    Grp *groups; size_t ngroups, capgroups;
    int32_t *gidx; size_t gcap;
    char *norm; size_t norm_cap;
    RawEnt *raw; /* RAW_SLOTS of them */
    /* events, in file order, with their line number ("seq") */
    /* each pid's first line (a new process), in file order, with the pid of the line before it (prev_has: one);
     * at most MAX_PIDS of them (pids_capped: more came) */
    long long *pid_ts, *pid_v, *pid_seq, *pid_prev; char *pid_hasts, *pid_prev_has;
    size_t npids, cap_pts, cap_pv, cap_ps, cap_ph, cap_pp, cap_pph;
    int pids_capped;
    /* the known pids (open addressing, index into the lists above + 1; 0: empty) and where each one's lines last
     * resumed after another pid's (-1: never) */
    int32_t *pid_idx; size_t pid_cap; long long *pid_back; size_t cap_pb;
    long long *ban_ts, *ban_seq; char *ban_hasts; size_t nban, cap_bt, cap_bs, cap_bh;
    Crash *crashes; size_t ncrash, capcrash; long long crashes_over; /* at most MAX_CRASHES listed */
    long long banners_over; /* startup banners beyond MAX_BANNERS */
    long long lines, debug, info, alloc_w, free_w, deinit_w;
    long long other[2][128][3]; /* lines of shapes beyond MAX_GROUPS: [warning?][flags][scope: other, gpa, DebugAllocator] */
    long long unreadable, bad_times; /* json lines / export entries skipped; lines with a time out of range */
    int has_first; long long first, last;
    int has_pid; long long last_pid;
    /* short-iso: the previous line's second, and the syslog prefixes ("tails") seen last with what they meant: a
     * host's journal interleaves units, hosts and pids. c_valid: tails[c_cur] is the previous line's tail;
     * c_tvalid: c_hour, c_secs and c_b hold the time of c_sec in the time zone c_tzw. */
    int c_valid, c_tvalid, c_cur, c_turn;
    char c_sec[19];
    long long c_secs, c_hour, c_b;
    uint64_t c_tzw;
    Tail tails[NTAILS];
    Tail sh; /* journalctl's short format: the previous line's host, ident and pid ("tail", n 0: none) */
    /* json: decoded values; the bucket of the last second seen */
    char *jbuf[4]; size_t jcap[4];
    const char *rlim; /* bytes up to here may be read (past a message's end) by the vector loops */
    uint64_t *jq, *jsp; size_t jq_cap, jsp_cap; /* json: bit maps of a line's quotes and backslash/control bytes */
    int j_bvalid; long long j_sec, j_b;
    int32_t prio_col[8]; /* PRIORITY 0..7: column index + 1 (0: not yet made) */
    char reason[200]; int failed;
    long long range_start, range_stop; /* scan_file: where the counted lines/entries began, where the scan ended */
    long long cut_lines; /* lines longer than MAX_LINE: only their first MAX_LINE bytes read */
    char *ubuf; size_t ucap; /* short format: a message with invalid UTF-8, as Python decodes it */
} Scanner;

static int gave_way(Scanner *s, const char *why) {
    snprintf(s->reason, sizeof s->reason, "%s", why);
    return R_GAVE_WAY;
}

/* ---------------------------------------------------------------- activity columns */
static int32_t col_of(Scanner *s, char cat, const char *name, Py_ssize_t n) {
    uint64_t h = hash_mem(0x51ed27u ^ (uint64_t)(unsigned char)cat, name, (size_t)n);
    if ((s->ncols + 1) * 2 > s->colcap) {
        size_t nc = s->colcap ? s->colcap * 2 : 256;
        int32_t *ni = malloc(nc * sizeof(int32_t));
        if (!ni) return -1;
        memset(ni, 0xff, nc * sizeof(int32_t));
        for (size_t i = 0; i < s->ncols; i++) {
            size_t j = s->cols[i].h & (nc - 1);
            while (ni[j] >= 0) j = (j + 1) & (nc - 1);
            ni[j] = (int32_t)i;
        }
        free(s->colidx);
        s->colidx = ni;
        s->colcap = nc;
    }
    size_t j = h & (s->colcap - 1);
    while (s->colidx[j] >= 0) {
        Col *c = &s->cols[s->colidx[j]];
        if (c->h == h && c->cat == cat && c->n == n && eq_bytes(c->s, name, (size_t)n)) return s->colidx[j];
        j = (j + 1) & (s->colcap - 1);
    }
    if (grow((void **)&s->cols, &s->capcols, s->ncols + 1, sizeof(Col)) < 0) return -1;
    if (grow((void **)&s->bacc, &s->bacc_cap, s->ncols + 1, sizeof(long long)) < 0) return -1;
    char *copy = dup_bytes(name, n);
    if (!copy) return -1;
    s->cols[s->ncols] = (Col){h, copy, n, 0, cat};
    s->bacc[s->ncols] = 0;
    s->colidx[j] = (int32_t)s->ncols;
    return (int32_t)s->ncols++;
}

static int flush_bucket(Scanner *s) {
    size_t need = s->nout + s->ntouched;
    if (grow((void **)&s->ob, &s->cap_ob, need, sizeof(long long)) < 0
        || grow((void **)&s->oc, &s->cap_oc, need, sizeof(int32_t)) < 0
        || grow((void **)&s->on, &s->cap_on, need, sizeof(long long)) < 0)
        return -1;
    for (size_t i = 0; i < s->ntouched; i++) {
        int32_t c = s->touched[i];
        s->ob[s->nout] = s->bcur;
        s->oc[s->nout] = c;
        s->on[s->nout++] = s->bacc[c];
        s->bacc[c] = 0;
    }
    s->ntouched = 0;
    return 0;
}

/* count one event of column c in the line's bucket (and in the total) */
static int count_col(Scanner *s, const Ctx *cx, int32_t c) {
    s->cols[c].total++;
    if (!cx->hasb) return 0;
    if (!s->bopen || s->bcur != cx->b) {
        if (s->bopen && flush_bucket(s) < 0) return -1;
        s->bopen = 1;
        s->bcur = cx->b;
    }
    if (s->bacc[c]++ == 0) {
        if (grow((void **)&s->touched, &s->touched_cap, s->ntouched + 1, sizeof(int32_t)) < 0) return -1;
        s->touched[s->ntouched++] = c;
    }
    return 0;
}

static int count(Scanner *s, const Ctx *cx, char cat, const char *name, Py_ssize_t n) { /* by name */
    int32_t c = col_of(s, cat, name, n);
    return c < 0 ? -1 : count_col(s, cx, c);
}

/* ---------------------------------------------------------------- error/warning groups */
/* the words add_level_group looks for (scan._FLAG_WORDS): part of a group's key, so its example stands for all */
static const char *const WORDS[] = {"alloc", "free", "deinit", "leaked", "memory address", "double free", "unauthori"};
static const size_t WLEN[] = {5, 4, 6, 6, 14, 11, 9};
enum { F_ALLOC = 1, F_FREE = 2, F_DEINIT = 4, F_LEAKED = 8, F_MEMADDR = 16, F_DFREE = 32, F_UNAUTH = 64 };

static inline int word_at(const char *p, const char *e, int k) {
    size_t w = WLEN[k];
    if ((size_t)(e - p) < w) return 0;
    for (size_t i = 1; i < w; i++) /* the first letter is known to match */
        if (lower((unsigned char)p[i]) != (unsigned char)WORDS[k][i]) return 0;
    return 1;
}

static inline int word_at_any(const char *p, const char *e, int k) { /* word k at p, first letter included */
    return lower((unsigned char)*p) == (unsigned char)WORDS[k][0] && word_at(p, e, k);
}

static inline int words_at(const char *p, const char *e) { /* the flag words starting at p */
    switch (lower((unsigned char)*p)) {
    case 'a': return word_at(p, e, 0) ? F_ALLOC : 0;
    case 'f': return word_at(p, e, 1) ? F_FREE : 0;
    case 'd': return (word_at(p, e, 2) ? F_DEINIT : 0) | (word_at(p, e, 5) ? F_DFREE : 0);
    case 'l': return word_at(p, e, 3) ? F_LEAKED : 0;
    case 'm': return word_at(p, e, 4) ? F_MEMADDR : 0;
    case 'u': return word_at(p, e, 6) ? F_UNAUTH : 0;
    default: return 0;
    }
}

static int flags_base(const char *m, Py_ssize_t n, const char *rlim) {
    (void)rlim;
    int flags = 0;
    for (const char *p = m, *e = m + n; p < e; p++) flags |= words_at(p, e);
    return flags;
}

static const char *digit_base(const char *p, const char *e, const char *rlim) {
    (void)rlim;
    while (p < e && !is_digit((unsigned char)*p)) p++;
    return p;
}

/* a string's stop: '"', '\\' or a control character (< 0x20) */
static const char *str_stop_base(const char *p, const char *e) {
    while (p < e && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\') p++;
    return p;
}

#ifdef ZC_X86
/* the words found through a rare two-letter anchor each: alloc "oc"@3, free "ee"@2, double free "ee"@9,
 * deinit "ei"@1, leaked "ke"@3, memory address "dd"@8, unauthori "au"@2 (case-insensitive) */
__attribute__((target("avx2"))) static int flags_avx2(const char *m, Py_ssize_t n, const char *rlim) {
    const char *p = m, *e = m + n;
    int flags = 0;
    const __m256i c20 = _mm256_set1_epi8(0x20);
#define ZC_EQ(x, ch) _mm256_cmpeq_epi8(x, _mm256_set1_epi8(ch))
#define ZC_PAIR(x, y) (uint32_t)_mm256_movemask_epi8(_mm256_and_si256(ZC_EQ(a, x), ZC_EQ(b, y)))
#define ZC_AT(mask, off, k, bit) \
    for (uint32_t mm = (mask); mm; mm &= mm - 1) { \
        const char *w = p + __builtin_ctz(mm) - (off); \
        if (w >= m && w < e && word_at_any(w, e, k)) flags |= (bit); \
    }
    while (p < e && rlim - p >= 33) { /* blocks may run past e: anchors there fail the word check */
        __m256i a = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)p), c20);
        __m256i b = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(p + 1)), c20);
        uint32_t oc = ZC_PAIR('o', 'c'), ee = ZC_PAIR('e', 'e'), ei = ZC_PAIR('e', 'i'), ke = ZC_PAIR('k', 'e'),
                 dd = ZC_PAIR('d', 'd'), au = ZC_PAIR('a', 'u');
        if (oc | ee | ei | ke | dd | au) {
            ZC_AT(oc, 3, 0, F_ALLOC)
            ZC_AT(ee, 2, 1, F_FREE)
            ZC_AT(ee, 9, 5, F_DFREE)
            ZC_AT(ei, 1, 2, F_DEINIT)
            ZC_AT(ke, 3, 3, F_LEAKED)
            ZC_AT(dd, 8, 4, F_MEMADDR)
            ZC_AT(au, 2, 6, F_UNAUTH)
        }
        p += 32;
    }
#undef ZC_AT
#undef ZC_PAIR
#undef ZC_EQ
    if (p < e) /* near the end of the readable data: the rest letter by letter (and words whose anchor is there) */
        for (p = p - 9 > m ? p - 9 : m; p < e; p++) flags |= words_at(p, e);
    return flags;
}

__attribute__((target("avx2"))) static const char *digit_avx2(const char *p, const char *e, const char *rlim) {
    const __m256i zero = _mm256_set1_epi8('0'), nine = _mm256_set1_epi8(9);
    while (p < e && rlim - p >= 32) { /* may look past e (readable): a digit there counts as none */
        __m256i d = _mm256_sub_epi8(_mm256_loadu_si256((const __m256i *)p), zero);
        uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(d, nine), d));
        if (m) return p + __builtin_ctz(m) < e ? p + __builtin_ctz(m) : e;
        p += 32;
    }
    return p < e ? digit_base(p, e, rlim) : e;
}

__attribute__((target("avx2"))) static const char *str_stop_avx2(const char *p, const char *e) {
    const __m256i q = _mm256_set1_epi8('"'), bs = _mm256_set1_epi8('\\'), hi = _mm256_set1_epi8((char)0xE0),
                  z = _mm256_setzero_si256();
    while (e - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)p);
        __m256i m = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, q), _mm256_cmpeq_epi8(v, bs)),
                                    _mm256_cmpeq_epi8(_mm256_and_si256(v, hi), z));
        uint32_t mask = (uint32_t)_mm256_movemask_epi8(m);
        if (mask) return p + __builtin_ctz(mask);
        p += 32;
    }
    return str_stop_base(p, e);
}
#endif

/* An error text with its digits masked, '0' kept and '1'-'9' as '1', into out (n bytes): texts alike there have
 * the same group (normalising and the flag words depend on where digits are and whether one is a '0' of "0x", not
 * on their values), so the cache of recent lines finds a line whose numbers changed. */
static void mask_digits_base(const char *m, Py_ssize_t n, const char *rlim, char *out) {
    (void)rlim;
    for (Py_ssize_t i = 0; i < n; i++) out[i] = m[i] >= '1' && m[i] <= '9' ? '1' : m[i];
}

#ifdef ZC_X86
__attribute__((target("avx2"))) static void mask_digits_avx2(const char *m, Py_ssize_t n, const char *rlim, char *out) {
    if (rlim - m < ((n + 31) & ~(Py_ssize_t)31)) { mask_digits_base(m, n, rlim, out); return; }
    const __m256i zero = _mm256_set1_epi8('0'), nine = _mm256_set1_epi8(9), one = _mm256_set1_epi8('1');
    for (Py_ssize_t i = 0; i < n; i += 32) { /* out has room for the whole last block */
        __m256i v = _mm256_loadu_si256((const __m256i *)(m + i)), d = _mm256_sub_epi8(v, zero);
        __m256i dig = _mm256_andnot_si256(_mm256_cmpeq_epi8(v, zero), _mm256_cmpeq_epi8(_mm256_min_epu8(d, nine), d));
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_blendv_epi8(v, one, dig)); /* '1'-'9' -> '1' */
    }
}
#endif

/* bit maps of '"' and of '\\' or control bytes over [p, e) (64 bytes a word; bits past e clear) */
static void qmask_base(const char *p, const char *e, const char *rlim, uint64_t *q, uint64_t *sp) {
    (void)rlim;
    size_t n = (size_t)(e - p);
    for (size_t w = 0; w * 64 < n; w++) {
        uint64_t a = 0, b = 0;
        for (size_t i = 0; i < 64 && w * 64 + i < n; i++) {
            unsigned char c = (unsigned char)p[w * 64 + i];
            a |= (uint64_t)(c == '"') << i;
            b |= (uint64_t)(c == '\\' || c < 0x20) << i;
        }
        q[w] = a;
        sp[w] = b;
    }
}

#ifdef ZC_X86
__attribute__((target("avx2"))) static void qmask_avx2(const char *p, const char *e, const char *rlim, uint64_t *q,
                                                       uint64_t *sp) {
    const __m256i dq = _mm256_set1_epi8('"'), bs = _mm256_set1_epi8('\\'), hi = _mm256_set1_epi8((char)0xE0),
                  z = _mm256_setzero_si256();
    size_t n = (size_t)(e - p), w = 0;
    for (; w * 64 < n; w++) {
        const char *b = p + w * 64;
        if (rlim - b < 64) break;
        __m256i v0 = _mm256_loadu_si256((const __m256i *)b), v1 = _mm256_loadu_si256((const __m256i *)(b + 32));
#define ZC_SP(v) _mm256_or_si256(_mm256_cmpeq_epi8(v, bs), _mm256_cmpeq_epi8(_mm256_and_si256(v, hi), z))
        q[w] = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v0, dq))
               | (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v1, dq)) << 32;
        sp[w] = (uint64_t)(uint32_t)_mm256_movemask_epi8(ZC_SP(v0)) | (uint64_t)(uint32_t)_mm256_movemask_epi8(ZC_SP(v1)) << 32;
#undef ZC_SP
        if (n - w * 64 < 64) { /* the line ends in this word */
            uint64_t keep = ((uint64_t)1 << (n - w * 64)) - 1;
            q[w] &= keep;
            sp[w] &= keep;
        }
    }
    if (w * 64 < n) qmask_base(p + w * 64, e, rlim, q + w, sp + w);
}
#endif

/* chosen once at import (the CPU does not change) */
static int (*flags_of)(const char *, Py_ssize_t, const char *) = flags_base;
static void (*mask_digits)(const char *, Py_ssize_t, const char *, char *) = mask_digits_base;
static const char *(*next_digit)(const char *, const char *, const char *) = digit_base;
static const char *(*str_stop)(const char *, const char *) = str_stop_base;
static void (*qmask)(const char *, const char *, const char *, uint64_t *, uint64_t *) = qmask_base;

/* the end of the number at p (a digit): 0x<hex>, digits, or digits.digits (logscan._NUM) */
static inline const char *number_end(const char *p, const char *e) {
    if (*p == '0' && e - p > 2 && p[1] == 'x' && is_hex((unsigned char)p[2])) {
        p += 2;
        while (p < e && is_hex((unsigned char)*p)) p++;
        return p;
    }
    while (p < e && is_digit((unsigned char)*p)) p++;
    if (e - p > 1 && *p == '.' && is_digit((unsigned char)p[1])) {
        p++;
        while (p < e && is_digit((unsigned char)*p)) p++;
    }
    return p;
}

/* _NUMB: 0x[0-9a-fA-F]+ -> "N", \d+(?:\.\d+)? -> "N" (left to right, like re.sub). d: the first digit in
 * [m, m + n) (m + n: none), found by the caller. */
static Py_ssize_t normalise(Scanner *s, const char *m, Py_ssize_t n, const char *d) {
    if (grow((void **)&s->norm, &s->norm_cap, (size_t)n + 1, 1) < 0) return -1;
    char *o = s->norm;
    const char *p = m, *e = m + n;
    for (;;) {
        memcpy(o, p, (size_t)(d - p));
        o += d - p;
        if (d >= e) break;
        p = number_end(d, e);
        *o++ = 'N';
        d = next_digit(p, e, s->rlim);
    }
    return o - s->norm;
}

static inline void group_seen(Grp *g, const Ctx *cx) {
    g->count++;
    if (cx->hasts) {
        if (!g->hasts) { g->hasts = 1; g->first = g->last = cx->us; }
        else { if (cx->us < g->first) g->first = cx->us; if (cx->us > g->last) g->last = cx->us; }
    }
}

/* The group of one error/warning line (created on first sight: count 0): kind 'z' (Zig level prefix; text after
 * it), 'p' (a plain line, whole), 'c' (a crash). digit: the first digit of msg (msg + mn: none). -1 when out of
 * memory, -2 when MAX_GROUPS are full. */
static int32_t group_of(Scanner *s, char kind, char level, const char *scope, Py_ssize_t sn, const char *msg,
                        Py_ssize_t mn, const char *digit) {
    Py_ssize_t nn = normalise(s, msg, mn, digit);
    if (nn < 0) return -1;
    if (nn > GROUP_KEY_MAX) nn = GROUP_KEY_MAX;
    int flags = flags_of(msg, mn, s->rlim);
    uint64_t h = hash_mem(hash_mem(((uint64_t)(unsigned char)kind << 16) ^ ((uint64_t)(unsigned char)level << 8)
                                   ^ (uint64_t)flags, scope, (size_t)sn), s->norm, (size_t)nn);
    if ((s->ngroups + 1) * 2 > s->gcap) {
        size_t nc = s->gcap ? s->gcap * 2 : 64;
        int32_t *ni = malloc(nc * sizeof(int32_t));
        if (!ni) return -1;
        memset(ni, 0xff, nc * sizeof(int32_t));
        for (size_t g = 0; g < s->ngroups; g++) {
            size_t j = s->groups[g].h & (nc - 1);
            while (ni[j] >= 0) j = (j + 1) & (nc - 1);
            ni[j] = (int32_t)g;
        }
        free(s->gidx);
        s->gidx = ni;
        s->gcap = nc;
    }
    size_t j = h & (s->gcap - 1);
    while (s->gidx[j] >= 0) {
        Grp *g = &s->groups[s->gidx[j]];
        if (g->h == h && g->kind == kind && g->level == level && g->flags == flags && g->scope_n == sn
            && g->norm_n == nn && eq_bytes(g->scope, scope, (size_t)sn) && eq_bytes(g->norm, s->norm, (size_t)nn))
            return s->gidx[j];
        j = (j + 1) & (s->gcap - 1);
    }
    if (s->ngroups >= MAX_GROUPS) return -2; /* full: the caller counts the line as "other" */
    if (grow((void **)&s->groups, &s->capgroups, s->ngroups + 1, sizeof(Grp)) < 0) return -1;
    Grp *g = &s->groups[s->ngroups];
    memset(g, 0, sizeof(Grp));
    g->h = h; g->flags = flags; g->level = level; g->kind = kind; g->count = 0; g->seq = s->lines;
    g->scope = dup_bytes(scope, sn); g->scope_n = sn;
    g->norm = dup_bytes(s->norm, nn); g->norm_n = nn;
    if (mn > EXAMPLE_MAX) mn = EXAMPLE_MAX;
    g->ex = dup_bytes(msg, mn); g->ex_n = mn;
    if (!g->scope || !g->norm || !g->ex) return -1;
    s->gidx[j] = (int32_t)s->ngroups;
    return (int32_t)s->ngroups++;
}

/* One error/warning line into its group; returns its flags, or -1 when out of memory. Lines alike once their
 * digits are masked (mask_digits: the same kind, level, scope and masked text) have the same group, so they are
 * found through a cache of recent ones without normalising them again: a 401 warning repeats verbatim, a timeout
 * line with another number of milliseconds repeats once masked. An address in hex rarely repeats: such lines go
 * to their group the long way. Texts longer than RAW_TEXT always do. */
static int add_group(Scanner *s, char kind, char level, const char *scope, Py_ssize_t sn, const char *msg,
                     Py_ssize_t mn, const Ctx *cx) {
    RawEnt *r = NULL;
    uint64_t h = 0;
    char key[RAW_TEXT + 32]; /* + room for the last 32-byte block */
    if (mn <= RAW_TEXT) {
        mask_digits(msg, mn, s->rlim, key);
        h = sample_key(hash_mem(((uint64_t)(unsigned char)kind << 16) ^ ((uint64_t)(unsigned char)level << 8),
                                scope, (size_t)sn), key, (size_t)mn);
        r = &s->raw[h & (RAW_SLOTS - 1)];
        if (r->h == h && r->g >= 0 && r->n == mn && eq_bytes(r->text, key, (size_t)mn)) {
            Grp *g = &s->groups[r->g];
            if (g->kind == kind && g->level == level && g->scope_n == sn && eq_bytes(g->scope, scope, (size_t)sn)) {
                group_seen(g, cx);
                return g->flags;
            }
        }
    }
    const char *d = next_digit(msg, msg + mn, s->rlim);
    int32_t gi = group_of(s, kind, level, scope, sn, msg, mn, d);
    if (gi == -2) { /* beyond MAX_GROUPS shapes */
        int fl = flags_of(msg, mn, s->rlim);
        int sc = sn == 3 && memcmp(scope, "gpa", 3) == 0 ? 1 : sn == 14 && memcmp(scope, "DebugAllocator", 14) == 0 ? 2 : 0;
        s->other[level == 'w'][fl & 127][sc]++;
        return fl;
    }
    if (gi < 0) return -1;
    group_seen(&s->groups[gi], cx);
    if (r) { r->h = h; r->g = gi; r->n = mn; memcpy(r->text, key, (size_t)mn); }
    return s->groups[gi].flags;
}

/* ---------------------------------------------------------------- events */
static int push_pid(Scanner *s, const Ctx *cx) {
    size_t k = s->npids + 1;
    if (grow((void **)&s->pid_ts, &s->cap_pts, k, sizeof(long long)) < 0 || grow((void **)&s->pid_v, &s->cap_pv, k, sizeof(long long)) < 0
        || grow((void **)&s->pid_seq, &s->cap_ps, k, sizeof(long long)) < 0 || grow((void **)&s->pid_hasts, &s->cap_ph, k, 1) < 0)
        return -1;
    if (grow((void **)&s->pid_prev, &s->cap_pp, k, sizeof(long long)) < 0 || grow((void **)&s->pid_prev_has, &s->cap_pph, k, 1) < 0
        || grow((void **)&s->pid_back, &s->cap_pb, k, sizeof(long long)) < 0)
        return -1;
    s->pid_ts[s->npids] = cx->us;
    s->pid_v[s->npids] = cx->pid;
    s->pid_hasts[s->npids] = (char)cx->hasts;
    s->pid_prev[s->npids] = s->last_pid;
    s->pid_prev_has[s->npids] = (char)s->has_pid;
    s->pid_back[s->npids] = -1;
    s->pid_seq[s->npids++] = s->lines;
    return 0;
}

static int push_banner(Scanner *s, const Ctx *cx) {
    if (s->nban >= MAX_BANNERS) { s->banners_over++; return 0; }
    size_t k = s->nban + 1;
    if (grow((void **)&s->ban_ts, &s->cap_bt, k, sizeof(long long)) < 0 || grow((void **)&s->ban_seq, &s->cap_bs, k, sizeof(long long)) < 0
        || grow((void **)&s->ban_hasts, &s->cap_bh, k, 1) < 0)
        return -1;
    s->ban_ts[s->nban] = cx->us;
    s->ban_hasts[s->nban] = (char)cx->hasts;
    s->ban_seq[s->nban++] = s->lines;
    return 0;
}

static int push_crash(Scanner *s, const Ctx *cx, const char *m, Py_ssize_t n) {
    if (s->ncrash >= MAX_CRASHES) { s->crashes_over++; return 0; }
    if (grow((void **)&s->crashes, &s->capcrash, s->ncrash + 1, sizeof(Crash)) < 0) return -1;
    char *copy = dup_bytes(m, n);
    if (!copy) return -1;
    s->crashes[s->ncrash++] = (Crash){cx->us, cx->pid, s->lines, copy, n, (char)cx->hasts, (char)cx->haspid};
    return 0;
}

/* ---------------------------------------------------------------- the level of a line */
static int level_hit(Scanner *s, char kind, char level, const char *sc, Py_ssize_t sn, const char *text,
                     Py_ssize_t tn, const Ctx *cx) {
    int flags = add_group(s, kind, level, sc, sn, text, tn, cx);
    if (flags < 0) return -1;
    if (!cx->hasb) return 0;
    if (count_col(s, cx, level == 'e' ? s->c_error : s->c_warning) < 0) return -1;
    if (level == 'w' && (flags & F_UNAUTH) && count_col(s, cx, s->c_unauth) < 0) return -1;
    return 0;
}

static int debug_line(Scanner *s, const char *text, const char *e, const Ctx *cx) {
    Py_ssize_t tn = e - text;
    s->debug++;
    int words = flags_of(text, tn, s->rlim); /* alloc, free, deinit (case-insensitive) among them */
    s->alloc_w += (words & F_ALLOC) != 0;
    s->free_w += (words & F_FREE) != 0;
    s->deinit_w += (words & F_DEINIT) != 0;
    if (has_prefix(text, e, "[gateway] ", 10)) { /* ^\[gateway\] ([A-Z]+) (/\S*) */
        const char *p = text + 10, *q = p;
        while (q < e && is_upper((unsigned char)*q)) q++;
        if (q > p && q + 1 < e && q[0] == ' ' && q[1] == '/') {
            const char *r = q + 2;
            while (r < e && !is_space((unsigned char)*r)) r++;
            if (count(s, cx, 'R', p, r - p) < 0) return -1;
        }
    }
    return 0;
}

/* "(scope)" then ": " after a level word ending at w: the text start (and scope), or NULL */
static const char *zig_rest(const char *w, const char *e, const char **sc, const char **sce) {
    *sc = *sce = w;
    if (w < e && *w == '(') {
        const char *close = w + 1; /* scopes are short: a loop, not a call */
        while (close < e && *close != ')') close++;
        if (close == e) close = NULL;
        if (close && e - close >= 3 && close[1] == ':' && close[2] == ' ') { *sc = w + 1; *sce = close; return close + 3; }
        return NULL;
    }
    if (w + 2 <= e && w[0] == ':' && w[1] == ' ') return w + 2;
    return NULL;
}

/* logscan._PLAIN: (?:thread \d+ )?panic: | (Segmentation fault|Illegal instruction|Bus error) at address  -> crash;
 * Warn(?:ing)?:  -> warning; (?:Error|[A-Z][a-z]+ error):  -> error. 0: none, else kind/level via out. */
static int plain_level(const char *m, const char *e, char *kind, char *level) {
    unsigned char c = (unsigned char)*m;
    if (c == 't' && has_prefix(m, e, "thread ", 7)) {
        const char *d = m + 7;
        while (d < e && is_digit((unsigned char)*d)) d++;
        if (d > m + 7 && has_prefix(d, e, " panic: ", 8)) { *kind = 'c'; *level = 'e'; return 1; }
        return 0;
    }
    if (c == 'p') {
        if (has_prefix(m, e, "panic: ", 7)) { *kind = 'c'; *level = 'e'; return 1; }
        return 0;
    }
    if (!is_upper(c)) return 0;
    if ((c == 'S' && has_prefix(m, e, "Segmentation fault at address ", 30))
        || (c == 'I' && has_prefix(m, e, "Illegal instruction at address ", 31))
        || (c == 'B' && has_prefix(m, e, "Bus error at address ", 21))) {
        *kind = 'c'; *level = 'e'; return 1;
    }
    if (c == 'W' && (has_prefix(m, e, "Warn: ", 6) || has_prefix(m, e, "Warning: ", 9))) {
        *kind = 'p'; *level = 'w'; return 1;
    }
    if (c == 'E' && has_prefix(m, e, "Error: ", 7)) { *kind = 'p'; *level = 'e'; return 1; }
    const char *q = m + 1;
    while (q < e && is_lower((unsigned char)*q)) q++;
    if (q > m + 1 && has_prefix(q, e, " error: ", 8)) { *kind = 'p'; *level = 'e'; return 1; }
    return 0;
}

/* The level of the line [m, e): Zig prefix (error|warning|info|debug)(?:\(([^)\n]*)\))?: , else a plain rule. */
static int scan_level(Scanner *s, const char *m, const char *e, const Ctx *cx) {
    if (m >= e) return 0;
    const char *w = NULL, *sc, *sce, *text;
    char level = 0;
    switch (*m) {
    case 'e': if (has_prefix(m, e, "error", 5)) { level = 'e'; w = m + 5; } break;
    case 'w': if (has_prefix(m, e, "warning", 7)) { level = 'w'; w = m + 7; } break;
    case 'd': if (has_prefix(m, e, "debug", 5)) { level = 'd'; w = m + 5; } break;
    case 'i': if (has_prefix(m, e, "info", 4)) { level = 'i'; w = m + 4; } break;
    default: break;
    }
    if (w && (text = zig_rest(w, e, &sc, &sce)) != NULL) {
        if (level == 'i') { s->info++; return 0; }
        if (level == 'd') return debug_line(s, text, e, cx);
        return level_hit(s, 'z', level, sc, sce - sc, text, e - text, cx);
    }
    if (w) return 0; /* "error" not followed by a prefix: an ordinary line */
    char kind;
    if (!plain_level(m, e, &kind, &level)) return 0;
    if (level_hit(s, kind, level, "", 0, m, e - m, cx) < 0) return -1;
    if (kind == 'c' && push_crash(s, cx, m, e - m) < 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------- one line of a message */
/* A bracket tag at o ('['), data up to lim (the line ends at the first '\n' before lim): where the match ends
 * (o + 1 when there is none). The literals hold no '\n', so checking them against lim never crosses the line end. */
static const char *scan_tag(Scanner *s, const char *o, const char *lim, const Ctx *cx, int *err) {
    const char *after = o + 1, *e = lim;
    if (has_prefix(after, e, "agent] tool ", 12)) {
        const char *t = after + 12;
        if (has_prefix(t, e, "skill args=", 11)) {
            const char *x = t + 11;
            const char *nl = memchr(x, '\n', (size_t)(lim - x));
            e = nl ? nl : lim;
            while (x < e) { /* TOOL_SKILL_ARGS of zcnb/logs/skills.py: the first "name":[ \t\r\f\v]*"([^"\n]*)" that completes (lazy [^\n]*?) */
                const char *nm = memchr(x, '"', (size_t)(e - x));
                if (!nm) break;
                if (has_prefix(nm, e, "\"name\":", 7)) {
                    const char *v = nm + 7;
                    while (v < e && is_space((unsigned char)*v)) v++;
                    if (v < e && *v == '"') {
                        const char *z = memchr(v + 1, '"', (size_t)(e - (v + 1)));
                        if (z) {
                            if (z > v + 1 && count(s, cx, 'S', v + 1, z - (v + 1)) < 0) *err = 1;
                            return z + 1;
                        }
                    }
                }
                x = nm + 1;
            }
        }
        const char *q = t; /* ([\w.-]+) args= */
        while (q < e && (is_word((unsigned char)*q) || *q == '.' || *q == '-')) q++;
        if (q > t && has_prefix(q, e, " args=", 6)) {
            if (count(s, cx, 'O', t, q - t) < 0) *err = 1;
            return q + 6;
        }
    } else if (has_prefix(after, e, "heartbeat] ", 11)) {
        if (count_col(s, cx, s->c_heartbeat) < 0) *err = 1;
        return after + 11;
    } else if (has_prefix(after, e, "ws] ", 4)) {
        if (count_col(s, cx, s->c_ws) < 0) *err = 1;
        return after + 4;
    }
    return o + 1;
}

/* skill:([A-Za-z0-9_-]+) with its ':' at c (the 'l' before it already seen); non-overlapping like re.findall */
static inline int skill_token(Scanner *s, const char *c, const char *lim, const char **tok_end, const Ctx *cx) {
    if (c - 5 < *tok_end || memcmp(c - 5, "skill", 5) != 0 || c + 1 >= lim || !is_name((unsigned char)c[1])) return 0;
    const char *r = c + 1;
    while (r < lim && is_name((unsigned char)*r)) r++;
    *tok_end = r;
    return count(s, cx, 'T', c + 1, r - (c + 1));
}

/* After the line [m, e) was searched for tokens and tags: its level, and a startup banner */
static inline __attribute__((always_inline)) int finish_line(Scanner *s, const char *m, const char *e, const Ctx *cx, int banners) {
    if (scan_level(s, m, e, cx) < 0) return -1;
    if (banners == 1 && e - m >= 11 && memmem(m, (size_t)(e - m), "Main Token:", 11) && push_banner(s, cx) < 0) return -1;
    if (banners == 2) { /* raw text: every banner (bytes.count) */
        const char *c = m;
        while (e - c >= 11 && (c = memmem(c, (size_t)(e - c), "Main Token:", 11)) != NULL) {
            if (push_banner(s, cx) < 0) return -1;
            c += 11;
        }
    }
    return 0;
}

/* the first 8 bytes after '[' of the tags scan_tag knows ("agent] tool ", "heartbeat] "), and the 4 of "ws] "
 * (little-endian words, as memcpy loads them) */
#define TAG_AGENT 0x74205d746e656761ULL     /* "agent] t" */
#define TAG_HEARTBEAT 0x6165627472616568ULL /* "heartbea" */
#define TAG_WS 0x205d7377U                  /* "ws] " */
static inline __attribute__((always_inline)) int scan_hit(Scanner *s, const char *c, const char *m, const char *lim, const char **tok_end,
                    const char **tag_end, const Ctx *cx) {
    if (*c == ':') return skill_token(s, c, lim, tok_end, cx);
    if (c >= *tag_end) { /* '[' outside the previous tag match */
        if (lim - c >= 9) { /* most tags are none of the three: rejected by their first bytes, without a call */
            uint64_t w;
            memcpy(&w, c + 1, 8);
            if (w != TAG_AGENT && w != TAG_HEARTBEAT && (uint32_t)w != TAG_WS) return 0;
        }
        int err = 0;
        *tag_end = scan_tag(s, c, lim, cx, &err);
        if (err) return -1;
    }
    (void)m;
    return 0;
}

/* One step of the line scan: the masks of '\n', ':', '[' and 'l' over `width` bytes at p (bits past width clear).
 * Tokens and tags before the line end are handled; 1: the line goes on past this step, else what finish_line
 * gives (0, or -1 when out of memory). *carry: an 'l' in the step's last byte (a "skill:" across steps). */
static inline __attribute__((always_inline)) int line_step(Scanner *s, const char *p, int width, uint64_t nl, uint64_t co,
                                                           uint64_t br, uint64_t ell, uint64_t *carry, const char *m,
                                                           const char *lim, const char **tok_end, const char **tag_end,
                                                           const Ctx *cx, int banners, const char **eout) {
    uint64_t hits = br | (co & ((ell << 1) | *carry));
    *carry = (ell >> (width - 1)) & 1;
    if (nl) hits &= (nl & (0 - nl)) - 1; /* only what lies before the line end */
    while (hits) {
        const char *c = p + __builtin_ctzll(hits);
        hits &= hits - 1;
        if (scan_hit(s, c, m, lim, tok_end, tag_end, cx) < 0) return -1;
    }
    if (!nl) return 1;
    const char *e = p + __builtin_ctzll(nl);
    *eout = e;
    return finish_line(s, m, e, cx, banners);
}

/* The line's last bytes before lim (fewer than a step), byte by byte */
static inline __attribute__((always_inline)) int line_tail(Scanner *s, const char *p, const char *m, const char *lim,
                                                           const char **tok_end, const char **tag_end, const Ctx *cx,
                                                           int banners, const char **eout) {
    for (; p < lim; p++) {
        char ch = *p;
        if (ch == '\n') { *eout = p; return finish_line(s, m, p, cx, banners); }
        if ((ch == ':' && p > m && p[-1] == 'l') || ch == '[') {
            if (scan_hit(s, p, m, lim, tok_end, tag_end, cx) < 0) return -1;
        }
    }
    *eout = lim;
    return finish_line(s, m, lim, cx, banners);
}

#ifdef ZC_X86
__attribute__((target("avx2"))) static inline void block_avx2(const char *p, uint32_t *nl, uint32_t *co, uint32_t *br,
                                                              uint32_t *ell) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    *nl = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('\n')));
    *co = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(':')));
    *br = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('[')));
    *ell = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('l')));
}
#ifndef ZC_PF_DIST
#define ZC_PF_DIST 1024
#endif
/* 64 bytes a step: most message lines end within the first block */
__attribute__((target("avx2"))) static inline void block64_avx2(const char *p, uint64_t *nl, uint64_t *co, uint64_t *br,
                                                                uint64_t *ell) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p), w = _mm256_loadu_si256((const __m256i *)(p + 32));
    const __m256i n = _mm256_set1_epi8('\n'), c = _mm256_set1_epi8(':'), b = _mm256_set1_epi8('['), l = _mm256_set1_epi8('l');
#define ZC_M64(X) ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, X)) \
                   | (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(w, X)) << 32)
    *nl = ZC_M64(n); *co = ZC_M64(c); *br = ZC_M64(b); *ell = ZC_M64(l);
#undef ZC_M64
}
/* One line from m to its end (the next '\n', or lim): tokens, tags, level, banner. *eout = the line end. */
__attribute__((target("avx2"))) static int scan_line_avx2(Scanner *s, const char *m, const char *lim, const Ctx *cx,
                                                          int banners, const char **eout) {
    const char *p = m, *tok_end = m, *tag_end = m;
    uint64_t carry = 0;
    int r;
    __builtin_prefetch(m + ZC_PF_DIST); /* the mapped page cache ahead of the line: less CPU on busy logs */
    for (; lim - p >= 64; p += 64) {
        uint64_t nl, co, br, ell;
        block64_avx2(p, &nl, &co, &br, &ell);
        if ((r = line_step(s, p, 64, nl, co, br, ell, &carry, m, lim, &tok_end, &tag_end, cx, banners, eout)) != 1) return r;
    }
    if (lim - p >= 32) { /* a short text (a journal field) or the window's end */
        uint32_t nl, co, br, ell;
        block_avx2(p, &nl, &co, &br, &ell);
        if ((r = line_step(s, p, 32, nl, co, br, ell, &carry, m, lim, &tok_end, &tag_end, cx, banners, eout)) != 1) return r;
        p += 32;
    }
    return line_tail(s, p, m, lim, &tok_end, &tag_end, cx, banners, eout);
}
static inline void block_sse2(const char *p, uint32_t *nl, uint32_t *co, uint32_t *br, uint32_t *ell) {
    __m128i a = _mm_loadu_si128((const __m128i *)p), b = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i vn = _mm_set1_epi8('\n'), vc = _mm_set1_epi8(':'), vb = _mm_set1_epi8('['), vl = _mm_set1_epi8('l');
#define ZC_M2(X) ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, X)) | ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, X)) << 16))
    *nl = ZC_M2(vn); *co = ZC_M2(vc); *br = ZC_M2(vb); *ell = ZC_M2(vl);
#undef ZC_M2
}
#else
static inline void block_sse2(const char *p, uint32_t *nl, uint32_t *co, uint32_t *br, uint32_t *ell) {
    uint32_t a = 0, b = 0, c = 0, d = 0;
    for (int i = 0; i < 32; i++) {
        a |= (uint32_t)(p[i] == '\n') << i; b |= (uint32_t)(p[i] == ':') << i;
        c |= (uint32_t)(p[i] == '[') << i; d |= (uint32_t)(p[i] == 'l') << i;
    }
    *nl = a; *co = b; *br = c; *ell = d;
}
#endif
static int scan_line_base(Scanner *s, const char *m, const char *lim, const Ctx *cx, int banners, const char **eout) {
    const char *p = m, *tok_end = m, *tag_end = m;
    uint64_t carry = 0;
    int r;
    for (; lim - p >= 32; p += 32) {
        uint32_t nl, co, br, ell;
        block_sse2(p, &nl, &co, &br, &ell);
        if ((r = line_step(s, p, 32, nl, co, br, ell, &carry, m, lim, &tok_end, &tag_end, cx, banners, eout)) != 1) return r;
    }
    return line_tail(s, p, m, lim, &tok_end, &tag_end, cx, banners, eout);
}

typedef int (*scan_line_fn)(Scanner *, const char *, const char *, const Ctx *, int, const char **);
static scan_line_fn scan_line = scan_line_base; /* set once at import (the CPU does not change) */

/* ---------------------------------------------------------------- short-iso prefix and timestamp */
static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((unsigned char)p[i])) return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

static long long days_from_civil(long long y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

enum { TS_OK = 0, TS_INVALID = 1, TS_UNSURE = 2 };
#define SURE_SECS 4000000000LL /* beyond this the same-second shortcuts could differ from float rounding */
/* zcnb.logs.message.MAX_LOG_TS: a time from 2200-01-01T00:00:00Z on (or before 1970) is out of range; its line
 * counts without a time, like one whose time is not a date (zcnb.logs.scan.parse_iso) */
#define MAX_LOG_SECS 7258118400LL
#define MAX_LOG_US (MAX_LOG_SECS * 1000000LL)

/* The timestamp text [p, q) already matched ISO_LINE's pattern; mirror datetime.fromisoformat + timestamp().
 * *secs = whole epoch seconds (offset applied), *us = microseconds. */
static int parse_ts(const char *p, const char *q, long long *secs, int *us, Scanner *s) {
    int Y = 0, M = 0, D = 0, h = 0, mi = 0, sec = 0, off = 0;
    *us = 0;
    digits(p, 4, &Y); digits(p + 5, 2, &M); digits(p + 8, 2, &D);
    digits(p + 11, 2, &h); digits(p + 14, 2, &mi); digits(p + 17, 2, &sec);
    const char *r = p + 19;
    if (r < q && (*r == '.' || *r == ',')) {
        const char *f = ++r;
        while (r < q && is_digit((unsigned char)*r)) r++;
        int nd = (int)(r - f);
        if (nd > 6) nd = 6; /* fromisoformat (3.11+) reads microseconds and skips further digits: truncated */
        digits(f, nd, us);
        for (int i = nd; i < 6; i++) *us *= 10;
    }
    if (r < q && (*r == '+' || *r == '-')) {
        int sign = *r == '-' ? -1 : 1, th = 0, tm = 0;
        digits(r + 1, 2, &th);
        digits(r + (r[3] == ':' ? 4 : 3), 2, &tm);
        if (th >= 24) return TS_INVALID;
        if (tm >= 60) {
            snprintf(s->reason, sizeof s->reason, "a timezone offset with %d minutes", tm);
            return TS_UNSURE;
        }
        off = sign * (th * 3600 + tm * 60);
    }
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (Y < 1 || M < 1 || M > 12 || D < 1 || h > 23 || mi > 59 || sec > 59) return TS_INVALID;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (D > mdays[M - 1] + (M == 2 && leap)) return TS_INVALID;
    *secs = days_from_civil(Y, M, D) * 86400LL + h * 3600 + mi * 60 + sec - off;
    if (*secs < 0 || *secs >= MAX_LOG_SECS) return TS_INVALID; /* out of range: counted without a time */
    return TS_OK;
}

static inline double epoch(long long secs, long long us) { return (double)(secs * 1000000LL + us) / 1e6; }

/* Python's float floor division, then int(...) * width */
static long long bucket_of(double ts, int width) {
    double wx = (double)width, mod = fmod(ts, wx), div = (ts - mod) / wx, fl;
    if (mod && ((wx < 0) != (mod < 0))) div -= 1.0;
    if (div) { fl = floor(div); if (div - fl > 0.5) fl += 1.0; }
    else fl = copysign(0.0, ts / wx);
    return (long long)fl * width;
}

typedef struct { const char *ts_end, *ident, *ident_end, *pid, *pid_end, *msg; } Prefix;

/* ident = [^\s\[]+? then (?:\[(\d+)\])? then ':' (lazy: the shortest ident that works) */
static int match_ident(const char *k, const char *e, Prefix *x) {
    const char *st = k;
    if (k >= e || is_space((unsigned char)*k) || *k == '[') return 0;
    k++;
    for (;;) {
        if (k >= e) return 0;
        if (*k == '[') {
            const char *d = k + 1;
            while (d < e && is_digit((unsigned char)*d)) d++;
            if (d > k + 1 && d + 1 < e && d[0] == ']' && d[1] == ':') {
                x->ident = st; x->ident_end = k; x->pid = k + 1; x->pid_end = d; x->msg = d + 2;
                return 1;
            }
            return 0;
        }
        if (*k == ':') {
            x->ident = st; x->ident_end = k; x->pid = x->pid_end = NULL; x->msg = k + 1;
            return 1;
        }
        if (is_space((unsigned char)*k)) return 0;
        k++;
    }
}

/* (?:(\S+) )??ident...: the ident at q, else a host (up to a space) and the ident after it */
static int match_host_ident(const char *q, const char *e, Prefix *x) {
    if (match_ident(q, e, x)) return 1;
    const char *h = q;
    while (h < e && !is_space((unsigned char)*h)) h++;
    return h > q && h < e && *h == ' ' && match_ident(h + 1, e, x);
}

/* ISO_LINE: ts, optional host, ident, optional [pid], ': ?', message */
static int match_iso(const char *p, const char *e, Prefix *x) {
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    if (e - p < 20) return 0;
    for (int i = 0; i < 19; i++) {
        if (pat[i] == 'd' ? !is_digit((unsigned char)p[i]) : p[i] != pat[i]) return 0;
    }
    const char *r = p + 19;
    if (r < e && (*r == '.' || *r == ',') && r + 1 < e && is_digit((unsigned char)r[1])) {
        r += 2;
        while (r < e && is_digit((unsigned char)*r)) r++;
    }
    if (r < e && *r == 'Z') r++;
    else if (r + 2 < e && (*r == '+' || *r == '-') && is_digit((unsigned char)r[1]) && is_digit((unsigned char)r[2])) {
        const char *t = r + 3;
        if (t + 2 < e && *t == ':' && is_digit((unsigned char)t[1]) && is_digit((unsigned char)t[2])) r = t + 3;
        else if (t + 1 < e && is_digit((unsigned char)t[0]) && is_digit((unsigned char)t[1])) r = t + 2;
    }
    if (r >= e || *r != ' ') return 0;
    x->ts_end = r;
    if (!match_host_ident(r + 1, e, x)) return 0;
    if (x->msg < e && *x->msg == ' ') x->msg++;
    return 1;
}

static inline const char *line_end(const char *p, const char *lim) {
    const char *nl = memchr(p, '\n', (size_t)(lim - p));
    return nl ? nl : lim;
}

static inline __attribute__((always_inline)) void see_time(Scanner *s, long long ts) {
    if (!s->has_first) { s->first = s->last = ts; s->has_first = 1; }
    else { if (ts < s->first) s->first = ts; if (ts > s->last) s->last = ts; }
}

/* The slot of pid in the table of known pids (*found: it is there) */
static size_t pid_slot(Scanner *s, long long pid, int *found) {
    size_t j = (size_t)((uint64_t)pid * 0x9E3779B97F4A7C15ULL >> 20) & (s->pid_cap - 1);
    while (s->pid_idx[j] && s->pid_v[s->pid_idx[j] - 1] != pid) j = (j + 1) & (s->pid_cap - 1);
    *found = s->pid_idx[j] != 0;
    return j;
}

/* A line of another pid than the line before: a new process (its first line, while fewer than MAX_PIDS are
 * known), or one known before whose lines resume (two processes side by side) */
static __attribute__((noinline)) int pid_change(Scanner *s, const Ctx *cx) {
    if ((s->npids + 1) * 2 > s->pid_cap) {
        size_t nc = s->pid_cap ? s->pid_cap * 2 : 64;
        int32_t *ni = calloc(nc, sizeof(int32_t));
        if (!ni) return -1;
        free(s->pid_idx);
        s->pid_idx = ni;
        s->pid_cap = nc;
        for (size_t i = 0; i < s->npids; i++) {
            int found;
            s->pid_idx[pid_slot(s, s->pid_v[i], &found)] = (int32_t)(i + 1);
        }
    }
    int found;
    size_t j = pid_slot(s, cx->pid, &found);
    if (found) s->pid_back[s->pid_idx[j] - 1] = s->lines;
    else if (s->npids >= MAX_PIDS) s->pids_capped = 1;
    else {
        if (push_pid(s, cx) < 0) return -1;
        s->pid_idx[j] = (int32_t)s->npids;
    }
    s->has_pid = 1;
    s->last_pid = cx->pid;
    return 0;
}

static inline __attribute__((always_inline)) int see_pid(Scanner *s, const Ctx *cx) {
    if (cx->haspid && (!s->has_pid || s->last_pid != cx->pid)) return pid_change(s, cx);
    return 0;
}

/* the two slots of a tail's hash */
static inline int tail_a(uint64_t h) { return (int)(h & (NTAILS - 1)); }
static inline int tail_b(uint64_t h) { return (int)((h >> 32) & (NTAILS - 1)); }
/* the slot holding a tail of hash h and length n, or -1 (the bytes are the caller's to compare) */
static inline int tail_slot(const Scanner *s, uint64_t h, Py_ssize_t n) {
    int a = tail_a(h), b = tail_b(h);
    return s->tails[a].h == h && s->tails[a].n == n ? a : s->tails[b].h == h && s->tails[b].n == n ? b : -1;
}

/* a matched prefix of another unit than the scanner's (only with a unit given) */
static inline int other_unit(const Scanner *s, const Prefix *x) {
    return s->has_ident && (x->ident_end - x->ident != s->ident_n || memcmp(x->ident, s->ident, (size_t)s->ident_n) != 0);
}

/* a matched prefix's pid, as int() of at most 11 digits reads it (0: none, or too long) */
static inline int prefix_pid(const Prefix *x, long long *pid) {
    *pid = 0;
    if (!x->pid || x->pid_end - x->pid >= 12) return 0;
    for (const char *d = x->pid; d < x->pid_end; d++) *pid = *pid * 10 + (*d - '0');
    return 1;
}

/* A tail seen before that the bytes at r (readable up to lim) start with; it becomes the current one. NULL: none.
 * A cached tail ends at the first ':' after its time zone's space, and that ':' is followed by a space (a host or
 * an ident holds no space; an ident ends at its first ':'), so that is where the line's tail would end. */
static __attribute__((noinline)) Tail *recent_tail(Scanner *s, const char *r, const char *lim) {
    const char *e = lim - r > TAIL_MAX ? r + TAIL_MAX : lim, *sp = r;
    while (sp < e && sp - r <= 6 && *sp != ' ') sp++;
    if (sp >= e || *sp != ' ') return NULL;
    const char *c = sp;
    while (c < e && *c != ':') c++;
    if (c + 1 < e && c[1] == ' ') {
        Py_ssize_t n = c + 2 - r;
        uint64_t h = hash_mem(0x7a11, r, (size_t)n);
        int i = tail_slot(s, h, n);
        if (i >= 0 && eq_bytes(r, s->tails[i].text, (size_t)n)) {
            s->c_cur = i;
            return &s->tails[i];
        }
    }
    if (s->has_ident) { /* a new prefix: another unit's line (or no journal line) is skipped whatever its time */
        static Tail skip = {.skip = 1};
        Prefix x;
        /* sp + 1: where match_iso reads the ident (or a host) when the time zone is valid; when it is not, the line
         * is skipped anyway; an ident or host never spans a line end */
        if (!match_host_ident(sp + 1, lim, &x) || other_unit(s, &x)) return &skip;
    }
    return NULL;
}

/* The prefix of the short-iso line at p on the slow path; fills the cache. 0: counted (cx, *msg set),
 * 1: not a line of the unit (skip), 2: gave way. */
static __attribute__((noinline)) int iso_prefix(Scanner *s, const char *p, const char *lim, Ctx *cx, const char **msg) {
    const char *e = line_end(p, lim);
    Prefix x;
    s->c_valid = 0;
    if (!match_iso(p, e, &x)) return 1;
    const char *tail = p + 19;
    if (*tail == '.' || *tail == ',') { tail++; while (is_digit((unsigned char)*tail)) tail++; }
    Py_ssize_t tn = x.msg - tail;
    /* cacheable when the prefix ends in ": ": the same bytes then always match the same way */
    int cache = tn <= TAIL_MAX && x.msg - p >= 2 && x.msg[-2] == ':' && x.msg[-1] == ' ';
    Tail *t = NULL;
    uint64_t tzw = 0;
    if (cache) {
        memcpy(&tzw, tail, (size_t)(x.ts_end - tail)); /* at most 6 bytes ("+00:00") */
        memcpy(s->c_sec, p, 19);
        s->c_tvalid = 0;
        uint64_t h = hash_mem(0x7a11, tail, (size_t)tn);
        int a = tail_a(h), b = tail_b(h), i = tail_slot(s, h, tn); /* its slot, else an empty one, else a or b */
        if (i < 0) i = s->tails[a].n == 0 ? a : s->tails[b].n == 0 ? b : (s->c_turn ^= 1) ? a : b;
        s->c_cur = i;
        t = &s->tails[i];
        memcpy(t->text, tail, (size_t)tn);
        t->n = tn;
        t->h = h;
        t->tzw = tzw;
        t->skip = 1;
        t->haspid = 0;
        t->pid = 0;
    }
    if (other_unit(s, &x)) {
        if (cache) s->c_valid = 1; /* another unit: whatever the time */
        return 1;
    }
    long long secs;
    int us;
    int r = parse_ts(p, x.ts_end, &secs, &us, s);
    if (r == TS_UNSURE) { if (t) t->n = 0; return 2; }
    cx->haspid = prefix_pid(&x, &cx->pid);
    *msg = x.msg;
    if (r == TS_INVALID) { /* not a date, or out of range: the line counts without a time (never cached) */
        if (t) t->n = 0;
        cx->hasts = cx->hasb = 0;
        cx->us = cx->b = 0;
        s->bad_times++;
        return 0;
    }
    cx->hasts = cx->hasb = 1;
    cx->us = secs * 1000000LL + us;
    cx->b = bucket_of(epoch(secs, us), s->width); /* the same for the whole second (below SURE_SECS) */
    if (cache && secs < SURE_SECS && secs > -SURE_SECS) {
        s->c_valid = s->c_tvalid = 1;
        s->c_secs = secs; s->c_b = cx->b;
        s->c_hour = secs - two(p + 14) * 60 - two(p + 17);
        s->c_tzw = tzw;
        t->skip = 0; t->haspid = cx->haspid; t->pid = cx->pid;
    } else {
        if (t) t->n = 0; /* the slot holds no tail */
        s->c_valid = 0;
    }
    return 0;
}

/* One short-iso line at p (its end is the next '\n', or lim); *eout = the line end. A line whose hour
 * (14 bytes) and syslog prefix repeat the cached line's needs only its minute, second and fraction read. */
static int iso_line(Scanner *s, const char *p, const char *lim, const char **eout) {
    Ctx cx;
    const char *msg = NULL;
    int hit = 0;
    if (s->c_valid && lim - p > 19 && eq_bytes(p, s->c_sec, 14)) {
        int same = eq_bytes(p + 11, s->c_sec + 11, 8), ok = 1, us = 0; /* bytes 14-18 ("MM:SS"), 8 at once */
        long long secs = s->c_secs;
        if (!same) { /* another minute or second of the same hour: "MM:SS" */
            ok = is_digit((unsigned char)p[14]) && is_digit((unsigned char)p[15]) && p[16] == ':'
                 && is_digit((unsigned char)p[17]) && is_digit((unsigned char)p[18]) && two(p + 14) <= 59
                 && two(p + 17) <= 59;
            secs = s->c_hour + two(p + 14) * 60 + two(p + 17);
        }
        const char *r = p + 19;
        if (ok && (*r == '.' || *r == ',') && r + 1 < lim && is_digit((unsigned char)r[1])) {
            const char *f = ++r;
            while (r < lim && is_digit((unsigned char)*r)) r++;
            int nd = (int)(r - f) < 6 ? (int)(r - f) : 6; /* as parse_ts: microseconds, further digits skipped */
            digits(f, nd, &us);
            for (int i = nd; i < 6; i++) us *= 10;
        }
        Tail *t = &s->tails[s->c_cur];
        if (ok && !(lim - r >= t->n && eq_bytes(r, t->text, (size_t)t->n))) t = recent_tail(s, r, lim);
        if (ok && t && t->skip) { *eout = line_end(r, lim); return 0; }
        if (ok && t && s->c_tvalid && t->tzw == s->c_tzw) { /* the time state holds for this tail's time zone */
            if (!same) { /* a second lies in one bucket; its bucket, exactly as Python's float // gives it */
                memcpy(s->c_sec + 14, p + 14, 5);
                s->c_secs = secs;
                s->c_b = floor_div(secs, s->width) * s->width;
            }
            cx.hasts = cx.hasb = 1;
            cx.us = secs * 1000000LL + us;
            cx.b = s->c_b;
            cx.haspid = t->haspid;
            cx.pid = t->pid;
            msg = r + t->n;
            hit = 1;
        }
    }
    if (!hit) {
        int r = iso_prefix(s, p, lim, &cx, &msg);
        if (r == 2) return R_GAVE_WAY;
        if (r == 1) { *eout = line_end(p, lim); return 0; }
    }
    if (cx.hasts) see_time(s, cx.us);
    if (see_pid(s, &cx) < 0) return R_NOMEM;
    s->rlim = lim;
    if (scan_line(s, msg, lim, &cx, cx.haspid ? 0 : 1, eout) < 0) return R_NOMEM;
    s->lines++;
    return 0;
}

/* [p, e) as Python's bytes.decode("utf-8", "replace") reads it, encoded again into out (room for 3 bytes per byte):
 * each maximal invalid subpart (a bad lead byte, or the longest valid start of a sequence cut short) becomes one
 * U+FFFD. Returns the length. */
static Py_ssize_t utf8_replace(const unsigned char *p, const unsigned char *e, unsigned char *out) {
    unsigned char *o = out;
    while (p < e) {
        unsigned c = *p;
        if (c < 0x80) {
            *o++ = (unsigned char)c;
            p++;
            continue;
        }
        int n = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0, k = 1;
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        while (k <= n && p + k < e && p[k] >= lo && p[k] <= hi) { /* only the second byte has narrower bounds */
            k++;
            lo = 0x80;
            hi = 0xBF;
        }
        if (n && k == n + 1) {
            memcpy(o, p, (size_t)k);
            o += k;
        } else {
            *o++ = 0xEF;
            *o++ = 0xBF;
            *o++ = 0xBD;
        }
        p += k;
    }
    return o - out;
}

/* Whether [p, e) is UTF-8 as Python's decoder accepts it (no overlong forms, surrogates or code points past
 * U+10FFFF) */
static int utf8_ok(const unsigned char *p, const unsigned char *e) {
    while (p < e) {
        if (e - p >= 8) { /* ASCII 8 bytes at a time */
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & 0x8080808080808080ULL)) { p += 8; continue; }
        }
        unsigned c = *p;
        if (c < 0x80) { p++; continue; }
        int n = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
        if (!n || e - p <= n) return 0;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) || (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* journalctl's short format, as zcnb.logs.formats.read_short_file reads it: the line without its trailing CRs must
 * match SHORT_LINE ("Mon DD HH:MM:SS[.f] [host ]ident[[pid]]: ?message"; else it is skipped), then it is one entry
 * of that ident with no time: counts, levels, pid changes and banners, no buckets. */
static int short_line(Scanner *s, const char *p, const char *lim, const char **eout) {
    const char *e = line_end(p, lim);
    *eout = e;
    while (e > p && e[-1] == '\r') e--;
    if (e - p < 16 || !is_upper((unsigned char)p[0]) || !is_lower((unsigned char)p[1]) || !is_lower((unsigned char)p[2])
        || p[3] != ' ' || !(p[4] == ' ' || is_digit((unsigned char)p[4])) || !is_digit((unsigned char)p[5]) || p[6] != ' '
        || !is_digit((unsigned char)p[7]) || !is_digit((unsigned char)p[8]) || p[9] != ':' || !is_digit((unsigned char)p[10])
        || !is_digit((unsigned char)p[11]) || p[12] != ':' || !is_digit((unsigned char)p[13]) || !is_digit((unsigned char)p[14]))
        return 0;
    const char *q = p + 15;
    if (q < e && *q == '.' && q + 1 < e && is_digit((unsigned char)q[1])) {
        q += 2;
        while (q < e && is_digit((unsigned char)*q)) q++;
    }
    if (q >= e || *q != ' ') return 0;
    q++;
    Tail *t = &s->sh;
    if (!(t->n > 0 && e - q >= t->n && eq_bytes(q, t->text, (size_t)t->n))) { /* not the previous line's prefix */
        Prefix x;
        if (!match_host_ident(q, e, &x)) return 0;
        /* the match depends on the bytes through the ident's ':' only: the same bytes match the same way */
        t->n = x.msg - q <= TAIL_MAX ? x.msg - q : 0;
        memcpy(t->text, q, (size_t)t->n);
        t->skip = other_unit(s, &x);
        t->haspid = prefix_pid(&x, &t->pid);
        if (t->skip) return 0;
        q = x.msg;
    } else {
        if (t->skip) return 0;
        q += t->n;
    }
    const char *msg = q < e && *q == ' ' ? q + 1 : q, *me = e;
    s->rlim = lim;
    if (!utf8_ok((const unsigned char *)msg, (const unsigned char *)e)) { /* read as read_short_file decodes it */
        if (grow((void **)&s->ubuf, &s->ucap, (size_t)(e - msg) * 3 + 64, 1) < 0) return R_NOMEM;
        me = s->ubuf + utf8_replace((const unsigned char *)msg, (const unsigned char *)e, (unsigned char *)s->ubuf);
        msg = s->ubuf;
        s->rlim = s->ubuf + s->ucap;
    }
    Ctx cx = {0, 0, 0, 0, 0, 0};
    cx.haspid = t->haspid;
    cx.pid = t->pid;
    if (see_pid(s, &cx) < 0) return R_NOMEM;
    const char *le;
    if (scan_line(s, msg, me, &cx, cx.haspid ? 0 : 1, &le) < 0) return R_NOMEM;
    s->lines++;
    return 0;
}

static int raw_line(Scanner *s, const char *p, const char *lim, const char **eout) {
    static const Ctx none = {0, 0, 0, 0, 0, 0};
    s->rlim = lim;
    if (scan_line(s, p, lim, &none, 2, eout) < 0) return R_NOMEM;
    s->lines++;
    return 0;
}

/* ---------------------------------------------------------------- journalctl -o json lines */
/* What json.loads + zcnb.logs.journal.entry_from_json make of one line, for the fields a summary uses. The line must be
 * a JSON object exactly as Python's json module accepts it (else the line is skipped, as read_journal_json does);
 * field values the C side cannot turn into the same text (numbers, objects, mixed arrays) make it give way. */
enum { JV_MISSING = 0, JV_NULL, JV_STR, JV_BYTES, JV_OTHER, JV_INT }; /* JV_INT: digits only, str() of it is itself */
enum { F_MESSAGE = 0, F_PID, F_PRIORITY, F_TS, F_UUNIT, F_UNIT, F_IDENT, NFIELDS };
typedef struct { int kind; const char *p; Py_ssize_t n; int esc; } JVal;
typedef struct { const char *p; Py_ssize_t n; } Txt; /* a field's text; p NULL: None */
static int count_entry(Scanner *s, const Txt *t, const char *rlim);
#define JDEPTH 64

static inline const char *j_ws(const char *p, const char *e) {
    while (p < e && (unsigned char)*p <= ' ' && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

/* a string at p ('"'): its content [*a, *b), *esc when it holds escapes; returns the end, or NULL when invalid */
static const char *j_string(const char *p, const char *e, const char **a, const char **b, int *esc) {
    const char *q = p + 1;
    *esc = 0;
    *a = q;
    for (;;) {
        q = str_stop(q, e);
        if (q >= e || (unsigned char)*q < 0x20) return NULL; /* unterminated, or a raw control character */
        if (*q == '"') { *b = q; return q + 1; }
        *esc = 1; /* backslash */
        if (q + 1 >= e) return NULL;
        char c = q[1];
        if (c == 'u') {
            if (e - q < 6 || !is_hex((unsigned char)q[2]) || !is_hex((unsigned char)q[3]) || !is_hex((unsigned char)q[4])
                || !is_hex((unsigned char)q[5]))
                return NULL;
            q += 6;
        } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
            q += 2;
        } else {
            return NULL;
        }
    }
}

static const char *j_number(const char *p, const char *e) {
    const char *q = p;
    if (q < e && *q == '-') q++;
    if (q >= e || !is_digit((unsigned char)*q)) return NULL;
    if (*q == '0') q++;
    else while (q < e && is_digit((unsigned char)*q)) q++;
    if (q + 1 < e && *q == '.' && is_digit((unsigned char)q[1])) {
        q += 2;
        while (q < e && is_digit((unsigned char)*q)) q++;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        const char *x = q + 1;
        if (x < e && (*x == '+' || *x == '-')) x++;
        if (x < e && is_digit((unsigned char)*x)) {
            while (x < e && is_digit((unsigned char)*x)) x++;
            q = x;
        }
    }
    return q;
}

static const char *j_value(const char *p, const char *e, int depth, JVal *out, int *deep);

/* an array at p ('['); classified for a tracked field: bytes (all 0..255 integers), a string (the first
 * non-null element of an all string/null array), null, or other */
static const char *j_array(const char *p, const char *e, int depth, JVal *out, int *deep) {
    const char *q = j_ws(p + 1, e);
    int all_bytes = 1, all_str = 1, n = 0;
    JVal first = {JV_NULL, NULL, 0, 0};
    if (q < e && *q == ']') { if (out) *out = (JVal){JV_BYTES, p + 1, 0, 0}; return q + 1; }
    for (;;) {
        JVal v = {JV_MISSING, NULL, 0, 0};
        const char *st = q;
        q = j_value(q, e, depth + 1, &v, deep);
        if (!q) return NULL;
        n++;
        if (v.kind == JV_STR) { if (first.kind == JV_NULL) first = v; all_bytes = 0; }
        else if (v.kind == JV_NULL) all_bytes = 0;
        else {
            all_str = 0;
            /* 0|[1-9][0-9]{0,2} and <= 255 (no sign, fraction or exponent: those are not Python ints) */
            Py_ssize_t len = q - st;
            int ok = (v.kind == JV_OTHER || v.kind == JV_INT) && len >= 1 && len <= 3 && is_digit((unsigned char)st[0]) && (len == 1 || st[0] != '0');
            for (Py_ssize_t i = 1; ok && i < len; i++) ok = is_digit((unsigned char)st[i]);
            if (ok) { int x = 0; for (Py_ssize_t i = 0; i < len; i++) x = x * 10 + (st[i] - '0'); ok = x <= 255; }
            if (!ok) all_bytes = 0;
        }
        q = j_ws(q, e);
        if (q < e && *q == ',') { q = j_ws(q + 1, e); continue; }
        if (q < e && *q == ']') break;
        return NULL;
    }
    if (out) {
        if (all_bytes) *out = (JVal){JV_BYTES, p + 1, q - (p + 1), 0};
        else if (all_str) *out = first;
        else *out = (JVal){JV_OTHER, NULL, 0, 0};
    }
    (void)n;
    return q + 1;
}

static const char *j_object(const char *p, const char *e, int depth, JVal *fields, int *deep);

static const char *j_value(const char *p, const char *e, int depth, JVal *out, int *deep) {
    if (depth > JDEPTH) { *deep = 1; return NULL; }
    if (p >= e) return NULL;
    const char *a, *b;
    int esc;
    switch (*p) {
    case '"': {
        const char *q = j_string(p, e, &a, &b, &esc);
        if (q && out) *out = (JVal){JV_STR, a, b - a, esc};
        return q;
    }
    case '{': if (out) out->kind = JV_OTHER; return j_object(p, e, depth + 1, NULL, deep);
    case '[': return j_array(p, e, depth, out, deep);
    case 'n': if (has_prefix(p, e, "null", 4)) { if (out) out->kind = JV_NULL; return p + 4; } return NULL;
    case 't': if (out) out->kind = JV_OTHER; return has_prefix(p, e, "true", 4) ? p + 4 : NULL;
    case 'f': if (out) out->kind = JV_OTHER; return has_prefix(p, e, "false", 5) ? p + 5 : NULL;
    case 'N': if (out) out->kind = JV_OTHER; return has_prefix(p, e, "NaN", 3) ? p + 3 : NULL;
    case 'I': if (out) out->kind = JV_OTHER; return has_prefix(p, e, "Infinity", 8) ? p + 8 : NULL;
    case '-':
        if (has_prefix(p, e, "-Infinity", 9)) { if (out) out->kind = JV_OTHER; return p + 9; }
        /* fall through */
    default: {
        const char *q = j_number(p, e);
        if (out) { /* a non-negative integer: Python's str() of it is its own text (not so for -0, 1.50 or 1e3) */
            int digits = q && *p != '-';
            for (const char *c = p; digits && c < q; c++) digits = is_digit((unsigned char)*c);
            *out = digits ? (JVal){JV_INT, p, q - p, 0} : (JVal){JV_OTHER, NULL, 0, 0};
        }
        return q;
    }
    }
}

static inline __attribute__((always_inline)) int j_field(const char *k, Py_ssize_t n) {
    switch (n) { /* eq_bytes with a constant length: a few word compares, no call */
    case 7: return eq_bytes(k, "MESSAGE", 7) ? F_MESSAGE : -1;
    case 4: return eq_bytes(k, "_PID", 4) ? F_PID : -1;
    case 8: return eq_bytes(k, "PRIORITY", 8) ? F_PRIORITY : -1;
    case 20: return eq_bytes(k, "__REALTIME_TIMESTAMP", 20) ? F_TS : -1;
    case 18: return eq_bytes(k, "_SYSTEMD_USER_UNIT", 18) ? F_UUNIT : -1;
    case 13: return eq_bytes(k, "_SYSTEMD_UNIT", 13) ? F_UNIT : -1;
    case 17: return eq_bytes(k, "SYSLOG_IDENTIFIER", 17) ? F_IDENT : -1;
    default: return -1;
    }
}

/* j_field for a key with at least 8 readable bytes from k (inside a line, before its end e): the first 8 bytes
 * and the length pick the candidate without a branch per name (keys come in any order: a switch mispredicts). */
static const char *const FNAME[NFIELDS] = {"MESSAGE", "_PID", "PRIORITY", "__REALTIME_TIMESTAMP", "_SYSTEMD_USER_UNIT",
                                           "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER"};
static uint64_t FHEAD[NFIELDS]; /* each name's first 8 bytes (zero-padded), set at import */
static Py_ssize_t FLEN[NFIELDS];
static void init_fields(void) {
    for (int k = 0; k < NFIELDS; k++) {
        size_t n = strlen(FNAME[k]);
        FLEN[k] = (Py_ssize_t)n;
        FHEAD[k] = 0;
        memcpy(&FHEAD[k], FNAME[k], n < 8 ? n : 8);
    }
}
static inline __attribute__((always_inline)) int j_field8(const char *k, Py_ssize_t n, const char *e) {
    if (e - k < 8 || n < 1) return j_field(k, n);
    uint64_t x;
    memcpy(&x, k, 8);
    if (n < 8) x &= ((uint64_t)1 << (8 * n)) - 1;
    int f = -1;
#pragma GCC unroll 8
    for (int i = 0; i < NFIELDS; i++) f = (n == FLEN[i] && x == FHEAD[i]) ? i : f; /* unrolled: cmovs */
    if (f >= 0 && n > 8 && !eq_bytes(k + 8, FNAME[f] + 8, (size_t)(n - 8))) f = -1;
    return f;
}

/* decode a JSON string's escapes into buf (UTF-8); lone surrogates become '?' (str.encode(errors="replace")),
 * and *lone says there was one. Returns the length. */
static Py_ssize_t j_unescape(const char *p, Py_ssize_t n, char *buf, int *lone) {
    char *o = buf;
    const char *e = p + n;
    while (p < e) {
        if (*p != '\\') { *o++ = *p++; continue; }
        char c = p[1];
        if (c != 'u') {
            *o++ = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
            p += 2;
            continue;
        }
        unsigned cp = (unsigned)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            unsigned lo = (unsigned)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
            if (lo >= 0xDC00 && lo <= 0xDFFF) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); p += 6; }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) { *o++ = '?'; *lone = 1; }
        else if (cp < 0x80) *o++ = (char)cp;
        else if (cp < 0x800) { *o++ = (char)(0xC0 | (cp >> 6)); *o++ = (char)(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
            *o++ = (char)(0xE0 | (cp >> 12)); *o++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xF0 | (cp >> 18)); *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o - buf;
}

/* The bit maps of one line (base: its first byte). */
typedef struct { const char *base; const uint64_t *q, *sp; size_t nw; } QMap;

/* A string at p ('"') through the bit maps: its end is the next quote unless a backslash or control byte comes
 * first, in which case j_string reads it (escapes). Same result as j_string. */
static inline __attribute__((always_inline)) const char *j_string_fast(const QMap *x, const char *p, const char *e, const char **a, const char **b,
                                        int *esc) {
    size_t off = (size_t)(p - x->base) + 1, w = off >> 6;
    if (w >= x->nw) return j_string(p, e, a, b, esc);
    uint64_t bits = x->q[w] & (~(uint64_t)0 << (off & 63));
    while (!bits) {
        if (++w >= x->nw) return j_string(p, e, a, b, esc); /* unterminated: j_string says so */
        bits = x->q[w];
    }
    size_t nq = (w << 6) + (size_t)__builtin_ctzll(bits), v = off >> 6;
    uint64_t below = (bits & (0 - bits)) - 1; /* bits of word w before the quote */
    uint64_t m = x->sp[v] & (~(uint64_t)0 << (off & 63)); /* any backslash or control byte inside? */
    if (v == w) m &= below;
    else {
        while (!m && ++v < w) m = x->sp[v];
        if (!m) m = x->sp[w] & below;
    }
    if (m) return j_string(p, e, a, b, esc);
    *esc = 0;
    *a = p + 1;
    *b = x->base + nq;
    return *b + 1;
}

static const char *j_object(const char *p, const char *e, int depth, JVal *fields, int *deep);

/* The common line: no backslash or control byte anywhere, every value a string. Then each quote in the map is a
 * string's start or end, and the object is read pair by pair: {"k":"v",...}. NULL: not such a line (the caller
 * reads it with j_line_object, which also judges whether it is valid at all). */
static const char *j_flat_object(const QMap *x, const char *p, const char *e, JVal *fields) {
    size_t w = 0;
    uint64_t bits = x->nw ? x->q[0] : 0;
#define ZC_NEXTQ(out)                                  \
    do {                                               \
        while (!bits) {                                \
            if (++w >= x->nw) return NULL;             \
            bits = x->q[w];                            \
        }                                              \
        out = x->base + (w << 6) + __builtin_ctzll(bits); \
        bits &= bits - 1;                              \
    } while (0)
#define ZC_WS(q) if (q < e && (unsigned char)*q <= ' ') q = j_ws(q, e)
    const char *q = p + 1, *a, *b;
    ZC_WS(q);
    if (q < e && *q == '}') return q + 1;
    for (;;) {
        ZC_NEXTQ(a);
        if (a != q) return NULL; /* something else than a string where a key belongs */
        ZC_NEXTQ(b);
        int f = j_field8(a + 1, b - (a + 1), e);
        q = b + 1;
        ZC_WS(q);
        if (q >= e || *q != ':') return NULL;
        q++;
        ZC_WS(q);
        ZC_NEXTQ(a);
        if (a != q) return NULL; /* not a string value */
        ZC_NEXTQ(b);
        if (f >= 0) fields[f] = (JVal){JV_STR, a + 1, b - (a + 1), 0};
        q = b + 1;
        ZC_WS(q);
        if (q < e && *q == ',') {
            q++;
            ZC_WS(q);
            continue;
        }
        return q < e && *q == '}' ? q + 1 : NULL;
    }
#undef ZC_WS
#undef ZC_NEXTQ
}

/* the top-level object of a line, with strings found through the bit maps */
static const char *j_line_object(const QMap *x, const char *p, const char *e, JVal *fields, int *deep) {
    const char *q = j_ws(p + 1, e);
    if (q < e && *q == '}') return q + 1;
    char kbuf[128];
    for (;;) {
        if (q >= e || *q != '"') return NULL;
        const char *a, *b;
        int esc;
        q = j_string_fast(x, q, e, &a, &b, &esc);
        if (!q) return NULL;
        int f = -1;
        if (!esc) f = j_field(a, b - a);
        else if (b - a <= (Py_ssize_t)sizeof kbuf) { /* an escaped key: the unescaped text is no longer */
            int lone = 0;
            Py_ssize_t kn = j_unescape(a, b - a, kbuf, &lone);
            f = lone ? -1 : j_field(kbuf, kn);
        }
        if (q < e && (unsigned char)*q <= ' ') q = j_ws(q, e);
        if (q >= e || *q != ':') return NULL;
        q++;
        if (q < e && (unsigned char)*q <= ' ') q = j_ws(q, e);
        JVal v = {JV_MISSING, NULL, 0, 0};
        if (q < e && *q == '"') {
            q = j_string_fast(x, q, e, &a, &b, &esc);
            v = (JVal){JV_STR, a, b - a, esc};
        } else {
            q = j_value(q, e, 0, f >= 0 ? &v : NULL, deep);
        }
        if (!q) return NULL;
        if (f >= 0) fields[f] = v; /* a repeated key: the last one wins, as in a dict */
        if (q < e && (unsigned char)*q <= ' ') q = j_ws(q, e);
        if (q < e && *q == ',') {
            q++;
            if (q < e && (unsigned char)*q <= ' ') q = j_ws(q, e);
            continue;
        }
        if (q < e && *q == '}') return q + 1;
        return NULL;
    }
}

static const char *j_object(const char *p, const char *e, int depth, JVal *fields, int *deep) {
    if (depth > JDEPTH) { *deep = 1; return NULL; }
    const char *q = j_ws(p + 1, e);
    if (q < e && *q == '}') return q + 1;
    char kbuf[128];
    for (;;) {
        if (q >= e || *q != '"') return NULL;
        const char *a, *b;
        int esc;
        q = j_string(q, e, &a, &b, &esc);
        if (!q) return NULL;
        int f = -1;
        if (fields) {
            if (!esc) f = j_field(a, b - a);
            else if (b - a <= (Py_ssize_t)sizeof kbuf) { /* an escaped key: the unescaped text is no longer */
                int lone = 0;
                Py_ssize_t kn = j_unescape(a, b - a, kbuf, &lone);
                f = lone ? -1 : j_field(kbuf, kn);
            }
        }
        q = j_ws(q, e);
        if (q >= e || *q != ':') return NULL;
        q = j_ws(q + 1, e);
        JVal v = {JV_MISSING, NULL, 0, 0};
        q = j_value(q, e, depth, f >= 0 ? &v : NULL, deep);
        if (!q) return NULL;
        if (f >= 0) fields[f] = v; /* a repeated key: the last one wins, as in a dict */
        q = j_ws(q, e);
        if (q < e && *q == ',') { q = j_ws(q + 1, e); continue; }
        if (q < e && *q == '}') return q + 1;
        return NULL;
    }
}

/* A field's text (decoded) into jbuf[k]: 0 ok (*t, *n; *t NULL = None), 1 gave way, -1 no memory. */
static int j_text(Scanner *s, const JVal *v, int k, int message, const char **t, Py_ssize_t *n) {
    *t = NULL;
    *n = 0;
    if (v->kind == JV_MISSING || v->kind == JV_NULL) return 0;
    if (v->kind == JV_OTHER || (v->kind == JV_BYTES && !message)) {
        snprintf(s->reason, sizeof s->reason, "a journal JSON field holding a fraction, object, boolean or mixed array");
        return 1;
    }
    if (grow((void **)&s->jbuf[k], &s->jcap[k], (size_t)v->n + 64, 1) < 0) return -1; /* + room to read past */
    if (v->kind == JV_BYTES) { /* [105, 110, ...]: the bytes themselves */
        char *o = s->jbuf[k];
        const char *p = v->p, *e = v->p + v->n;
        while (p < e) {
            p = j_ws(p, e);
            if (p >= e) break;
            int x = 0;
            while (p < e && is_digit((unsigned char)*p)) x = x * 10 + (*p++ - '0');
            *o++ = (char)x;
            p = j_ws(p, e);
            if (p < e && *p == ',') p++;
        }
        *t = s->jbuf[k];
        *n = o - s->jbuf[k];
        return 0;
    }
    if (!v->esc) { *t = v->p; *n = v->n; return 0; }
    int lone = 0;
    *n = j_unescape(v->p, v->n, s->jbuf[k], &lone);
    *t = s->jbuf[k];
    if (lone && !message) {
        snprintf(s->reason, sizeof s->reason, "a journal JSON field with a lone surrogate escape");
        return 1;
    }
    return 0;
}

/* _int(): ASCII digits -> the number; a text without any digit (or empty) -> None; anything else gives way */
static int j_int(Scanner *s, const char *t, Py_ssize_t n, int *has, long long *val) {
    *has = 0;
    if (!t) return 0;
    long long x = 0;
    Py_ssize_t i = 0;
    while (i < n && is_digit((unsigned char)t[i])) x = x * 10 + (t[i++] - '0');
    if (i == n && n && n <= 17) { /* plain digits: the common case */
        *has = 1;
        *val = x;
        return 0;
    }
    int digit = 0, other = 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (is_digit(c)) digit = 1;
        else if (c >= 0x80) other = 2;
        else other |= 1;
    }
    if (!digit && other < 2) return 0; /* int() fails: None */
    snprintf(s->reason, sizeof s->reason, "a journal JSON number field that is not plain digits");
    return 1;
}

/* The line at p: its end (the next '\n', or lim), and its bit maps in s->jq / s->jsp (s->jq_cap words at least
 * (e - p) / 64 + 1). -1 when out of memory. */
static int qline_base(Scanner *s, const char *p, const char *lim, const char **eout) {
    const char *e = line_end(p, lim);
    size_t nw = (size_t)(e - p) / 64 + 1;
    if (grow((void **)&s->jq, &s->jq_cap, nw, sizeof(uint64_t)) < 0 || grow((void **)&s->jsp, &s->jsp_cap, nw, sizeof(uint64_t)) < 0)
        return -1;
    qmask(p, e, lim, s->jq, s->jsp);
    *eout = e;
    return 0;
}

#ifdef ZC_X86
/* qline_base in one pass: the newline found with the quote and backslash/control maps, 64 bytes a step */
__attribute__((target("avx2"))) static int qline_avx2(Scanner *s, const char *p, const char *lim, const char **eout) {
    const __m256i dq = _mm256_set1_epi8('"'), bs = _mm256_set1_epi8('\\'), hi = _mm256_set1_epi8((char)0xE0),
                  z = _mm256_setzero_si256(), nl = _mm256_set1_epi8('\n');
    size_t w = 0;
    for (;; w++) {
        const char *b = p + w * 64;
        if (lim - b < 64) break;
        if (w + 1 > s->jq_cap || w + 1 > s->jsp_cap) {
            if (grow((void **)&s->jq, &s->jq_cap, w + 1, sizeof(uint64_t)) < 0
                || grow((void **)&s->jsp, &s->jsp_cap, w + 1, sizeof(uint64_t)) < 0)
                return -1;
        }
        __m256i v0 = _mm256_loadu_si256((const __m256i *)b), v1 = _mm256_loadu_si256((const __m256i *)(b + 32));
#define ZC_M(x) ((uint64_t)(uint32_t)_mm256_movemask_epi8(x))
#define ZC_SP(v) _mm256_or_si256(_mm256_cmpeq_epi8(v, bs), _mm256_cmpeq_epi8(_mm256_and_si256(v, hi), z))
        uint64_t q = ZC_M(_mm256_cmpeq_epi8(v0, dq)) | ZC_M(_mm256_cmpeq_epi8(v1, dq)) << 32;
        uint64_t sp = ZC_M(ZC_SP(v0)) | ZC_M(ZC_SP(v1)) << 32;
        uint64_t n = ZC_M(_mm256_cmpeq_epi8(v0, nl)) | ZC_M(_mm256_cmpeq_epi8(v1, nl)) << 32;
#undef ZC_SP
#undef ZC_M
        if (n) {
            int k = __builtin_ctzll(n);
            uint64_t keep = ((uint64_t)1 << k) - 1; /* k < 64 */
            s->jq[w] = q & keep;
            s->jsp[w] = sp & keep;
            *eout = b + k;
            return 0;
        }
        s->jq[w] = q;
        s->jsp[w] = sp;
    }
    const char *b = p + w * 64, *e = line_end(b, lim); /* the last bytes of the window */
    size_t nw = w + (size_t)(e - b) / 64 + 1;
    if (grow((void **)&s->jq, &s->jq_cap, nw, sizeof(uint64_t)) < 0 || grow((void **)&s->jsp, &s->jsp_cap, nw, sizeof(uint64_t)) < 0)
        return -1;
    qmask_base(b, e, lim, s->jq + w, s->jsp + w);
    *eout = e;
    return 0;
}
#endif
static int (*qline)(Scanner *, const char *, const char *, const char **) = qline_base;

static int json_line(Scanner *s, const char *p, const char *lim, const char **eout) {
    const char *e;
    if (qline(s, p, lim, &e) < 0) return R_NOMEM;
    *eout = e;
    const char *q = p;
    while (q < e && is_space((unsigned char)*q)) q++;
    if (q >= e) return 0; /* blank (bytes.strip): skipped */
    q = j_ws(*p == 0x1E ? p + 1 : e - p >= 6 && memcmp(p, "data: ", 6) == 0 ? p + 6 : p, e); /* json-seq, json-sse */
    if (q >= e || *q != '{') { s->unreadable++; return 0; } /* not an object (or not JSON): skipped, counted */
    JVal f[NFIELDS];
    memset(f, 0, sizeof f);
    int deep = 0;
    QMap x = {p, s->jq, s->jsp, (size_t)(e - p + 63) / 64};
    uint64_t special = 0;
    for (size_t i = 0; i < x.nw; i++) special |= s->jsp[i];
    const char *end = NULL;
    if (!special) { /* quotes relative to the line start: the map starts at p, the object at q */
        end = j_flat_object(&x, q, e, f);
        if (!end) memset(f, 0, sizeof f);
    }
    q = end ? end : j_line_object(&x, q, e, f, &deep);
    if (deep) return gave_way(s, "a journal JSON line nested deeper than 64 levels");
    if (!q || j_ws(q, e) != e) { s->unreadable++; return 0; } /* invalid JSON or extra data: skipped, counted */
    Txt t[NFIELDS];
    int r;
    for (int k = 0; k < NFIELDS; k++)
        if ((r = j_text(s, &f[k], k == F_MESSAGE ? 3 : k == F_UNIT ? 1 : k == F_IDENT ? 2 : 0, k == F_MESSAGE, &t[k].p,
                        &t[k].n)))
            return r;
    return count_entry(s, t, t[F_MESSAGE].p == s->jbuf[3] ? s->jbuf[3] + s->jcap[3] : lim);
}

/* One journal entry whose fields are texts (p NULL: None), as zcnb.logs._summarize_entries counts it: the unit
 * filter (_SYSTEMD_USER_UNIT or _SYSTEMD_UNIT; with neither, the identifier), time, pid, PRIORITY, and each line
 * of MESSAGE. rlim: how far past the message's bytes may be read. */
static int count_entry(Scanner *s, const Txt *t, const char *rlim) {
    const Txt *uu = &t[F_UUNIT], *su = &t[F_UNIT], *id = &t[F_IDENT];
    if (s->has_unit) {
        const Txt *u = uu->p && uu->n ? uu : su;
        int match = u->p && u->n ? (u->n == s->unit_n && memcmp(u->p, s->unit, (size_t)u->n) == 0)
                                 : (id->p && id->n == s->ident_n && memcmp(id->p, s->ident, (size_t)id->n) == 0);
        if (!match) return 0;
    }
    Ctx cx = {0, 0, 0, 0, 0, 0};
    long long usec = 0, prio = 0;
    int has_ts, has_prio, r;
    if ((r = j_int(s, t[F_TS].p, t[F_TS].n, &has_ts, &usec)) || (r = j_int(s, t[F_PID].p, t[F_PID].n, &cx.haspid, &cx.pid))
        || (r = j_int(s, t[F_PRIORITY].p, t[F_PRIORITY].n, &has_prio, &prio)))
        return r;
    if (has_ts && usec >= MAX_LOG_US) { /* out of range: the entry counts without a time */
        has_ts = 0;
        s->bad_times++;
    }
    if (has_ts) {
        cx.hasts = cx.hasb = 1;
        cx.us = usec;
        long long sec = usec / 1000000;
        if (s->j_bvalid && sec == s->j_sec) cx.b = s->j_b; /* a second lies in one bucket (below SURE_SECS) */
        else {
            cx.b = bucket_of((double)usec / 1e6, s->width);
            s->j_bvalid = sec < SURE_SECS;
            s->j_sec = sec;
            s->j_b = cx.b;
        }
        see_time(s, cx.us);
    }
    if (see_pid(s, &cx) < 0) return R_NOMEM;
    if (has_prio) {
        static const Ctx none = {0, 0, 0, 0, 0, 0};
        if (prio >= 0 && prio < 8) { /* syslog priorities: their columns remembered */
            if (!s->prio_col[prio]) {
                char d = (char)('0' + prio);
                int32_t c = col_of(s, 'P', &d, 1);
                if (c < 0) return R_NOMEM;
                s->prio_col[prio] = c + 1;
            }
            if (count_col(s, &none, s->prio_col[prio] - 1) < 0) return R_NOMEM;
        } else {
            char d[24];
            int dn = snprintf(d, sizeof d, "%lld", prio);
            if (count(s, &none, 'P', d, dn) < 0) return R_NOMEM;
        }
    }
    s->rlim = rlim;
    const char *m = t[F_MESSAGE].p ? t[F_MESSAGE].p : "", *mend = m + t[F_MESSAGE].n, *le;
    for (;;) { /* each line of a multi-line MESSAGE is a line (with the entry's time and pid) */
        if (scan_line(s, m, mend, &cx, cx.haspid ? 0 : 1, &le) < 0) return R_NOMEM;
        s->lines++;
        if (le >= mend) break;
        m = le + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- journalctl -o export entries */
/* NAME=value lines, or NAME\n<le64 size><bytes>\n for a binary field, and an empty line after each entry; the first
 * of a repeated field counts (zcnb.logs.journal_export). *eout = the empty line. R_INCOMPLETE: the entry goes past lim. */
/* An export line from q: its end (the next '\n', or NULL when none before lim), its first '=' (*eq, NULL when
 * none) and whether a NUL byte follows that '=' (*nul). */
static const char *xline_base(const char *q, const char *lim, const char **eq, int *nul) {
    const char *nl = memchr(q, '\n', (size_t)(lim - q));
    *eq = NULL;
    *nul = 0;
    if (!nl) return NULL;
    *eq = memchr(q, '=', (size_t)(nl - q));
    if (*eq) *nul = memchr(*eq, 0, (size_t)(nl - *eq)) != NULL;
    return nl;
}

#ifdef ZC_X86
/* xline_base in one pass, 32 bytes a step (three libc calls per field line cost more than the line) */
__attribute__((target("avx2"))) static const char *xline_avx2(const char *q, const char *lim, const char **eq, int *nul) {
    const __m256i vn = _mm256_set1_epi8('\n'), ve = _mm256_set1_epi8('='), vz = _mm256_setzero_si256();
    const char *p = q, *eqp = NULL;
    int z0 = 0;
    while (lim - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)p);
        uint32_t n = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, vn));
        uint32_t e = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, ve));
        uint32_t z = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, vz));
        if (n) {
            uint32_t before = (1u << __builtin_ctz(n)) - 1; /* ctz < 32 */
            e &= before;
            z &= before;
        }
        if (!eqp && e) {
            eqp = p + __builtin_ctz(e);
            z &= ~((1u << __builtin_ctz(e)) - 1);
        }
        if (eqp && z) z0 = 1;
        if (n) {
            *eq = eqp;
            *nul = z0;
            return p + __builtin_ctz(n);
        }
        p += 32;
    }
    for (; p < lim; p++) {
        if (*p == '\n') { *eq = eqp; *nul = z0; return p; }
        if (*p == '=' && !eqp) eqp = p;
        else if (*p == 0 && eqp) z0 = 1;
    }
    *eq = NULL;
    *nul = 0;
    return NULL;
}
#endif
static const char *(*xline)(const char *, const char *, const char **, int *) = xline_base;
static int use_export_fast = 0; /* the CPU has AVX2: export_fast */

#ifdef ZC_X86
/* The common export entry (text fields only, no NUL byte) from bit maps of its newlines and '=' (64 bytes a word),
 * built up to the empty line that ends it: count_entry's result, or FX_SLOW (nothing counted) when it is not such an
 * entry or lies too near lim (export_entry reads it then). */
#define FX_SLOW 1000
__attribute__((target("avx2"))) static int export_fast(Scanner *s, const char *p, const char *lim, const char **eout) {
    if (p >= lim || *p == '\n') return FX_SLOW;
    const __m256i vn = _mm256_set1_epi8('\n'), ve = _mm256_set1_epi8('='), vz = _mm256_setzero_si256();
    size_t w = 0;
    uint64_t prev_top = 0;
    const char *end = NULL; /* the empty line's newline */
    for (;; w++) {
        const char *b = p + w * 64;
        if (lim - b < 64) return FX_SLOW;
        if (w + 1 > s->jq_cap || w + 1 > s->jsp_cap) {
            if (grow((void **)&s->jq, &s->jq_cap, w + 1, sizeof(uint64_t)) < 0
                || grow((void **)&s->jsp, &s->jsp_cap, w + 1, sizeof(uint64_t)) < 0)
                return -1;
        }
        __m256i v0 = _mm256_loadu_si256((const __m256i *)b), v1 = _mm256_loadu_si256((const __m256i *)(b + 32));
#define ZC_M(x) ((uint64_t)(uint32_t)_mm256_movemask_epi8(x))
        uint64_t n = ZC_M(_mm256_cmpeq_epi8(v0, vn)) | ZC_M(_mm256_cmpeq_epi8(v1, vn)) << 32;
        uint64_t e = ZC_M(_mm256_cmpeq_epi8(v0, ve)) | ZC_M(_mm256_cmpeq_epi8(v1, ve)) << 32;
        uint64_t z = ZC_M(_mm256_cmpeq_epi8(v0, vz)) | ZC_M(_mm256_cmpeq_epi8(v1, vz)) << 32;
#undef ZC_M
        uint64_t two = n & ((n << 1) | prev_top); /* a newline right after a newline: the empty line */
        if (two) {
            int k = __builtin_ctzll(two);
            uint64_t keep = k == 63 ? ~(uint64_t)0 >> 1 : ((uint64_t)1 << (k + 1)) - 1;
            if (z & keep) return FX_SLOW;
            s->jq[w] = n & keep;
            s->jsp[w] = e & keep;
            end = b + k;
            break;
        }
        if (z) return FX_SLOW;
        s->jq[w] = n;
        s->jsp[w] = e;
        prev_top = n >> 63;
    }
    Txt t[NFIELDS];
    memset(t, 0, sizeof t);
    size_t q = 0; /* the line start, from p */
    for (size_t x = 0; x <= w; x++) {
        uint64_t nb = s->jq[x];
        while (nb) {
            size_t nl = (x << 6) + (size_t)__builtin_ctzll(nb);
            nb &= nb - 1;
            if (p + nl == end) break; /* the empty line */
            size_t y = q >> 6; /* the first '=' in [q, nl) */
            uint64_t eb = s->jsp[y] & (~(uint64_t)0 << (q & 63));
            while (!eb && ++y <= x) eb = s->jsp[y];
            if (!eb) return FX_SLOW; /* no '=' up to the end of the maps: a binary field */
            size_t eq = (y << 6) + (size_t)__builtin_ctzll(eb);
            if (eq > nl) return FX_SLOW; /* a line without '=': a binary field */
            int f = j_field8(p + q, (Py_ssize_t)(eq - q), lim);
            if (f >= 0 && !t[f].p) { t[f].p = p + eq + 1; t[f].n = (Py_ssize_t)(nl - eq - 1); }
            q = nl + 1;
        }
    }
    *eout = end;
    if (!t[F_MESSAGE].p) { t[F_MESSAGE].p = ""; t[F_MESSAGE].n = 0; }
    return count_entry(s, t, lim);
}
#endif

static int export_entry(Scanner *s, const char *p, const char *lim, const char **eout) {
#ifdef ZC_X86
    if (use_export_fast) {
        int r = export_fast(s, p, lim, eout);
        if (r != FX_SLOW) return r;
    }
#endif
    Txt t[NFIELDS];
    memset(t, 0, sizeof t);
    const char *q = p;
    int nf = 0;
    while (q < lim && *q != '\n') {
        const char *eq, *v, *ve;
        int f, nul;
        const char *nl = xline(q, lim, &eq, &nul);
        if (!nl) return R_INCOMPLETE;
        if (eq) {
            if (nul) return gave_way(s, "a journal export text field with a NUL byte");
            f = j_field8(q, eq - q, lim);
            v = eq + 1;
            ve = nl;
            q = nl + 1;
        } else { /* a binary field: its size's top byte is 0 for any size below 2^56 */
            if (lim - nl < 9) return R_INCOMPLETE;
            uint64_t size;
            memcpy(&size, nl + 1, 8);
            if (nl[8] != 0) return gave_way(s, "a journal export line that is neither NAME=value nor a binary field");
            if ((uint64_t)(lim - (nl + 9)) < size + 1) return size > (uint64_t)MAX_LINE ? gave_way(s, "a journal field over 4 MiB") : R_INCOMPLETE;
            f = j_field(q, nl - q);
            v = nl + 9;
            ve = v + size;
            if (*ve != '\n') return gave_way(s, "a journal export binary field not followed by a newline");
            q = ve + 1;
        }
        if (f >= 0 && !t[f].p) { t[f].p = v; t[f].n = ve - v; }
        nf++;
    }
    if (q >= lim) return R_INCOMPLETE;
    if (!nf) return gave_way(s, "an empty journal export entry (two empty lines)");
    *eout = q;
    if (!t[F_MESSAGE].p) { t[F_MESSAGE].p = ""; t[F_MESSAGE].n = 0; }
    return count_entry(s, t, lim);
}

/* ---------------------------------------------------------------- the scan loops */
static inline int one_line(Scanner *s, const char *p, const char *lim, const char **e) {
    switch (s->mode) {
    case MODE_ISO: return iso_line(s, p, lim, e);
    case MODE_RAW: return raw_line(s, p, lim, e);
    case MODE_SHORT: return short_line(s, p, lim, e);
    case MODE_JSON: return json_line(s, p, lim, e);
    default: return export_entry(s, p, lim, e);
    }
}

/* A line longer than MAX_LINE bytes (before its '\n') is cut as zcnb.logs.message.bounded_lines and
 * zcnb.logs.chunks.iter_chunks cut it: its first MAX_LINE bytes are read as the line, and cut_lines counts it. A
 * JSON line that long is unreadable, as read_journal_json judges it. */
static int cut_line(Scanner *s, const char *p) {
    if (s->mode == MODE_JSON) {
        s->unreadable++;
        return 0;
    }
    const char *e;
    int r = one_line(s, p, p + MAX_LINE, &e);
    if (!r) s->cut_lines++;
    return r;
}

/* The first line in [p, lim) longer than MAX_LINE bytes (*eout: its end, the next '\n' or lim), or NULL. Such a
 * line holds a whole newline-free piece of MAX_LINE / 2 bytes of any tiling of it, so a few memchr calls per window
 * tell (each stops at the first newline of its piece). */
static const char *first_long(const char *p, const char *lim, const char **eout) {
    const size_t h = (size_t)MAX_LINE / 2;
    const char *x = p;
    while (x < lim) {
        size_t n = (size_t)(lim - x) < h ? (size_t)(lim - x) : h;
        if (memchr(x, '\n', n)) {
            x += n;
            continue;
        }
        const char *s0 = x > p ? memrchr(p, '\n', (size_t)(x - p)) : NULL;
        s0 = s0 ? s0 + 1 : p;
        const char *e0 = memchr(x, '\n', (size_t)(lim - x));
        if (!e0) e0 = lim;
        if (e0 - s0 > MAX_LINE) {
            *eout = e0;
            return s0;
        }
        x = e0 + 1;
    }
    return NULL;
}

/* The line at p (in [p, lim)): cut when it is *lp, the next long line (then the one after it is looked for), else
 * read by one_line. */
static inline int step_line(Scanner *s, const char *p, const char *lim, const char **e, const char **lp,
                            const char **lend) {
    if (p != *lp) return one_line(s, p, lim, e);
    int r = cut_line(s, p);
    *e = *lend;
    *lp = *lend < lim ? first_long(*lend + 1, lim, lend) : NULL;
    return r;
}

/* Lines in [buf, buf+n); the last one may lack its newline. */
static int scan_lines(Scanner *s, const char *buf, Py_ssize_t n) {
    const char *p = buf, *end = buf + n, *e, *lend = NULL;
    const char *lp = s->mode == MODE_EXPORT ? NULL : first_long(p, end, &lend);
    while (p < end) {
        int r = step_line(s, p, end, &e, &lp, &lend);
        if (r) return r;
        p = e + 1;
    }
    return 0;
}

#define WINDOW ((off_t)8 << 20)        /* mapped at a time: bounds the file pages counted in RSS (2 threads: 16 MiB);
                                        * 4 MiB windows made the threads wait on each other unmapping them */
static int export_start(int fd, off_t *pos);
static int skip_line(int fd, off_t *pos, off_t from);

/* The first entry start at or after pos in an export file: the file's start or just after an empty line. The
 * caller checks it against where the previous range stopped (an empty line can lie inside binary data). */
static int export_start(int fd, off_t *pos) {
    if (*pos == 0) return 0;
    off_t at = *pos >= 2 ? *pos - 2 : 0;
    char tmp[65536], prev = 0;
    for (;;) {
        ssize_t k = pread(fd, tmp, sizeof tmp, at);
        if (k < 0) return R_IO;
        if (k == 0) { *pos = at; return 0; } /* no entry starts in the rest of the file */
        for (ssize_t i = 0; i < k; i++) {
            off_t x = at + i + 1; /* the position after this byte */
            if (tmp[i] == '\n' && prev == '\n' && x >= *pos && x >= 2) { *pos = x; return 0; }
            prev = tmp[i];
        }
        at += k;
    }
}

/* Lines (export: entries) whose first byte lies in [start, end) of the file (logchunks.iter_chunks' rule), through
 * mmap windows. s->range_start / range_stop: where the first counted one started and where the scan stopped. */
static int scan_path(Scanner *s, int fd, off_t size, off_t start, off_t end) {
    long page = sysconf(_SC_PAGESIZE);
    if (end > size) end = size;
    off_t pos = start;
    int exp = s->mode == MODE_EXPORT;
    if (exp && pos > 0 && pos < end) {
        if (export_start(fd, &pos) < 0) return R_IO;
    } else if (pos > 0 && pos < end) { /* the line that started before `start` belongs to the previous range */
        char c;
        if (pread(fd, &c, 1, pos - 1) != 1) return R_IO;
        if (c != '\n' && skip_line(fd, &pos, pos) < 0) return R_IO;
    }
    s->range_start = s->range_stop = pos;
    while (pos < end) {
        off_t off = pos - pos % page;
        off_t len = size - off < WINDOW ? size - off : WINDOW;
        char *map = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, off);
        if (map == MAP_FAILED) return R_IO;
        const char *p = map + (pos - off), *lim = map + len;
        int eof = off + len == size, r = 0;
        if (!eof && !exp) { /* complete lines only: the rest is mapped again with the next window */
            const char *last = memrchr(p, '\n', (size_t)(lim - p));
            lim = last ? last + 1 : p;
        }
        const char *lend = NULL, *lp = exp ? NULL : first_long(p, lim, &lend); /* the next line to cut */
        while (p < lim && off + (p - map) < end) {
            const char *e;
            r = step_line(s, p, lim, &e, &lp, &lend);
            if (!r && exp && e - p > MAX_LINE) r = gave_way(s, "a journal export entry longer than 4 MiB");
            if (r) break;
            p = e + 1;
        }
        if (p > lim) p = lim;
        off_t next = off + (p - map);
        if (r == R_INCOMPLETE && eof) /* a cut last entry: dropped and counted, as read_journal drops and counts it */
            for (const char *c = p; c < lim; c++)
                if (*c != '\n') { s->unreadable++; break; }
        int beyond = !r && !exp && next == pos; /* no newline in the window: a line longer than it */
        if (beyond) r = cut_line(s, p); /* its head lies in the window (more than MAX_LINE bytes from pos) */
        munmap(map, (size_t)len);
        if (r == R_INCOMPLETE) {
            r = 0;
            if (eof) { s->range_stop = size; return 0; }
        }
        if (r) return r;
        if (beyond && skip_line(fd, &next, off + len) < 0) return R_IO; /* the rest of it: skipped, unmapped */
        if (next == pos) return gave_way(s, "a journal export entry larger than the read window"); /* no progress */
        pos = next;
        s->range_stop = pos;
    }
    return 0;
}

/* *pos = the position after the first '\n' at or after `from` (the file's size when none) */
static int skip_line(int fd, off_t *pos, off_t from) {
    char tmp[65536];
    for (off_t at = from;;) {
        ssize_t k = pread(fd, tmp, sizeof tmp, at);
        if (k < 0) return R_IO;
        if (k == 0) { *pos = at; return 0; }
        char *nl = memchr(tmp, '\n', (size_t)k);
        if (nl) { *pos = at + (nl - tmp) + 1; return 0; }
        at += k;
    }
}
/* ---------------------------------------------------------------- Python type */
static void Scanner_dealloc(Scanner *s) {
    for (size_t i = 0; i < s->ncols; i++) free(s->cols[i].s);
    free(s->cols); free(s->colidx); free(s->bacc); free(s->touched); free(s->ob); free(s->oc); free(s->on);
    for (size_t g = 0; g < s->ngroups; g++) { free(s->groups[g].scope); free(s->groups[g].norm); free(s->groups[g].ex); }
    free(s->groups); free(s->gidx); free(s->norm); free(s->raw); free(s->ident); free(s->unit);
    free(s->pid_ts); free(s->pid_v); free(s->pid_seq); free(s->pid_hasts); free(s->pid_prev); free(s->pid_prev_has);
    free(s->pid_idx); free(s->pid_back);
    free(s->ban_ts); free(s->ban_seq); free(s->ban_hasts);
    for (size_t i = 0; i < s->ncrash; i++) free(s->crashes[i].msg);
    free(s->crashes);
    for (int k = 0; k < 4; k++) free(s->jbuf[k]);
    free(s->jq); free(s->jsp); free(s->ubuf);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int opt_bytes(PyObject *o, char **p, Py_ssize_t *n, int *has) {
    if (o == Py_None) return 0;
    char *b;
    if (PyBytes_AsStringAndSize(o, &b, n) < 0) return -1;
    *p = dup_bytes(b, *n);
    if (!*p) { PyErr_NoMemory(); return -1; }
    *has = 1;
    return 0;
}

static int Scanner_init(Scanner *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"mode", "ident", "unit", "width", NULL};
    const char *mode = "iso";
    int width = 60;
    PyObject *ident = Py_None, *unit = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$sOOi", names, &mode, &ident, &unit, &width)) return -1;
    if (width < 1) { PyErr_SetString(PyExc_ValueError, "width must be >= 1"); return -1; }
    if (strcmp(mode, "iso") == 0) s->mode = MODE_ISO;
    else if (strcmp(mode, "raw") == 0) s->mode = MODE_RAW;
    else if (strcmp(mode, "short") == 0) s->mode = MODE_SHORT;
    else if (strcmp(mode, "json") == 0) s->mode = MODE_JSON;
    else if (strcmp(mode, "export") == 0) s->mode = MODE_EXPORT;
    else { PyErr_Format(PyExc_ValueError, "mode %s is not iso, raw, short, json or export", mode); return -1; }
    s->width = width;
    if (opt_bytes(ident, &s->ident, &s->ident_n, &s->has_ident) < 0) return -1;
    if (opt_bytes(unit, &s->unit, &s->unit_n, &s->has_unit) < 0) return -1;
    s->raw = malloc(RAW_SLOTS * sizeof(RawEnt));
    if (!s->raw) { PyErr_NoMemory(); return -1; }
    for (size_t i = 0; i < RAW_SLOTS; i++) { s->raw[i].g = -1; s->raw[i].h = 0; s->raw[i].n = -1; }
    if ((s->c_error = col_of(s, 'L', "error", 5)) < 0 || (s->c_warning = col_of(s, 'L', "warning", 7)) < 0
        || (s->c_unauth = col_of(s, 'L', "unauth", 6)) < 0 || (s->c_heartbeat = col_of(s, 'K', "heartbeat", 9)) < 0
        || (s->c_ws = col_of(s, 'K', "ws", 2)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyObject *finish(Scanner *s, int r) {
    if (r == R_NOMEM) return PyErr_NoMemory();
    if (r > 0) { s->failed = 1; Py_RETURN_FALSE; }
    Py_RETURN_TRUE;
}

static PyObject *Scanner_feed(Scanner *s, PyObject *arg) {
    if (s->failed) Py_RETURN_FALSE;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = scan_lines(s, view.buf, view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return finish(s, r);
}

static PyObject *Scanner_scan_file(Scanner *s, PyObject *args) {
    PyObject *path;
    long long start, end;
    if (!PyArg_ParseTuple(args, "O&LL", PyUnicode_FSConverter, &path, &start, &end)) return NULL;
    if (s->failed) { Py_DECREF(path); Py_RETURN_FALSE; }
    int r, err = 0;
    Py_BEGIN_ALLOW_THREADS
    int fd = open(PyBytes_AS_STRING(path), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) r = R_IO;
    else r = scan_path(s, fd, st.st_size, (off_t)start, (off_t)end);
    if (r == R_IO) err = errno;
    if (fd >= 0) close(fd);
    Py_END_ALLOW_THREADS
    if (r == R_IO) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    return finish(s, r);
}

static PyObject *opt_ts(int has, long long us) { return has ? PyFloat_FromDouble((double)us / 1e6) : Py_NewRef(Py_None); }
static PyObject *opt_int(int has, long long v) { return has ? PyLong_FromLongLong(v) : Py_NewRef(Py_None); }

static int append(PyObject *list, PyObject *item) { /* steals item */
    if (!item) return -1;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}

static PyObject *Scanner_result(Scanner *s, PyObject *Py_UNUSED(ignored)) {
    if (s->bopen && flush_bucket(s) < 0) return PyErr_NoMemory();
    PyObject *cols = PyList_New(0), *groups = PyList_New(0), *pids = PyList_New(0), *banners = PyList_New(0),
             *crashes = PyList_New(0), *out = NULL;
    if (!cols || !groups || !pids || !banners || !crashes) goto done;
    for (size_t i = 0; i < s->ncols; i++) {
        Col *c = &s->cols[i];
        if (append(cols, Py_BuildValue("(Cy#L)", c->cat, c->s, c->n, c->total)) < 0) goto done;
    }
    for (size_t i = 0; i < s->ngroups; i++) {
        Grp *g = &s->groups[i];
        if (append(groups, Py_BuildValue("(Cy#Ly#y#iy#NNL)", g->kind, g->level == 'e' ? "error" : "warning",
                                         (Py_ssize_t)(g->level == 'e' ? 5 : 7), g->count, g->scope, g->scope_n,
                                         g->norm, g->norm_n, g->flags, g->ex, g->ex_n, opt_ts(g->hasts, g->first),
                                         opt_ts(g->hasts, g->last), g->seq)) < 0)
            goto done;
    }
    for (size_t i = 0; i < s->npids; i++)
        if (append(pids, Py_BuildValue("(NLLNL)", opt_ts(s->pid_hasts[i], s->pid_ts[i]), s->pid_v[i], s->pid_seq[i],
                                       s->pid_prev_has[i] ? PyLong_FromLongLong(s->pid_prev[i]) : Py_NewRef(Py_None),
                                       s->pid_back[i])) < 0)
            goto done;
    for (size_t i = 0; i < s->nban; i++)
        if (append(banners, Py_BuildValue("(NL)", opt_ts(s->ban_hasts[i], s->ban_ts[i]), s->ban_seq[i])) < 0) goto done;
    for (size_t i = 0; i < s->ncrash; i++) {
        Crash *c = &s->crashes[i];
        if (append(crashes, Py_BuildValue("(NNLy#)", opt_ts(c->hasts, c->us), opt_int(c->haspid, c->pid), c->seq,
                                          c->msg, c->msg_n)) < 0)
            goto done;
    }
    /* the bucket arrays as bytes, each C array freed as soon as it is copied (peak memory) */
    PyObject *bb = PyBytes_FromStringAndSize((const char *)s->ob, (Py_ssize_t)(s->nout * sizeof(long long)));
    free(s->ob); s->ob = NULL; s->cap_ob = 0;
    PyObject *bc = bb ? PyBytes_FromStringAndSize((const char *)s->oc, (Py_ssize_t)(s->nout * sizeof(int32_t))) : NULL;
    free(s->oc); s->oc = NULL; s->cap_oc = 0;
    PyObject *bn = bc ? PyBytes_FromStringAndSize((const char *)s->on, (Py_ssize_t)(s->nout * sizeof(long long))) : NULL;
    free(s->on); s->on = NULL; s->cap_on = 0;
    s->nout = 0;
    if (!bn) { Py_XDECREF(bb); Py_XDECREF(bc); goto done; }
    PyObject *other = PyList_New(0);
    if (!other) { Py_DECREF(bb); Py_DECREF(bc); Py_DECREF(bn); goto done; }
    for (int w = 0; w < 2; w++)
        for (int f = 0; f < 128; f++)
            for (int c = 0; c < 3; c++)
                if (s->other[w][f][c] && append(other, Py_BuildValue("(siiL)", w ? "warning" : "error", c, f,
                                                                     s->other[w][f][c])) < 0) {
                    Py_DECREF(bb); Py_DECREF(bc); Py_DECREF(bn); Py_DECREF(other);
                    goto done;
                }
    out = Py_BuildValue("{sLsNsNsOsOsOsOsOsNsNsNsLsLs(LLL)s(LL)sLsLsLsNsisNsLsL}", "lines", s->lines,
                        "first", opt_ts(s->has_first, s->first), "last", opt_ts(s->has_first, s->last),
                        "pids", pids, "banners", banners, "crashes", crashes, "columns", cols, "groups", groups,
                        "bucket_b", bb, "bucket_c", bc, "bucket_n", bn,
                        "debug", s->debug, "info", s->info, "alloc", s->alloc_w, s->free_w, s->deinit_w,
                        "range", s->range_start, s->range_stop, "unreadable", s->unreadable, "cut_lines", s->cut_lines,
                        "bad_times", s->bad_times, "other", other, "pids_capped", s->pids_capped,
                        "last_pid", s->has_pid ? PyLong_FromLongLong(s->last_pid) : Py_NewRef(Py_None),
                        "crashes_over", s->crashes_over, "banners_over", s->banners_over);
done:
    Py_XDECREF(cols); Py_XDECREF(groups); Py_XDECREF(pids); Py_XDECREF(banners); Py_XDECREF(crashes);
    return out;
}

static PyObject *Scanner_reason(Scanner *s, void *Py_UNUSED(closure)) {
    if (!s->failed) Py_RETURN_NONE;
    return PyUnicode_FromString(s->reason[0] ? s->reason : "an input it cannot judge");
}

static PyMethodDef Scanner_methods[] = {
    {"feed", (PyCFunction)Scanner_feed, METH_O,
     "feed(buffer) -> bool: count a buffer of complete lines; False when only the Python engine can judge it"},
    {"scan_file", (PyCFunction)Scanner_scan_file, METH_VARARGS,
     "scan_file(path, start, end) -> bool: count the lines starting in [start, end) of a file (mmap, no GIL)"},
    {"result", (PyCFunction)Scanner_result, METH_NOARGS, "result() -> dict of raw tallies"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Scanner_getset[] = {
    {"reason", (getter)Scanner_reason, NULL, "why the scan returned False (None otherwise)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zcnb.logs._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(*, mode='iso'|'raw'|'short'|'json'|'export', ident, unit, width): one-pass counter over log lines",
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
    .tp_init = (initproc)Scanner_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef scanmodule = {
    PyModuleDef_HEAD_INIT, "zcnb.logs._scan", "Native one-pass log counter for zcnb.logs.summarize_logs.", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
#ifdef ZC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        scan_line = scan_line_avx2;
        flags_of = flags_avx2;
        mask_digits = mask_digits_avx2;
        next_digit = digit_avx2;
        str_stop = str_stop_avx2;
        qmask = qmask_avx2;
        xline = xline_avx2;
        use_export_fast = 1;
        qline = qline_avx2;
    }
#endif
    init_fields();
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scanmodule);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) { Py_DECREF(m); return NULL; }
    if (PyModule_AddIntConstant(m, "VERSION", 2) < 0) { Py_DECREF(m); return NULL; }
    if (PyModule_AddStringConstant(m, "SIMD", scan_line == scan_line_base ? "sse2" : "avx2") < 0) { Py_DECREF(m); return NULL; }
    return m;
}
