/* zcnb.logs._scan: one-pass native counter for stage-03 log summaries.
 *
 * Mirrors the per-line rules of zcnb.logs.scan / zcnb.logs.chunks exactly (short-iso prefix regex, Zig level
 * prefix, skill:NAME tokens, "[agent] tool ..." / "[heartbeat] " / "[ws] " tags, debug request lines,
 * alloc/free/deinit mentions, pid changes, startup banners) and hands raw tallies back to Python, which
 * does the Unicode work (name normalisation, redaction, error grouping by redacted text).
 * Anything whose Python result it cannot reproduce for sure (an unusual timestamp) makes feed() return
 * False with a reason, and the caller uses the Python engine instead. The scan loop runs without the GIL.
 */
#define _GNU_SOURCE  /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- small helpers */
static inline int is_space(unsigned char c) {  /* \s of a bytes regex */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_word(unsigned char c) {  /* \w of a bytes regex */
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static inline int is_hex(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline int is_name(unsigned char c) { return is_word(c) || c == '-'; }  /* [A-Za-z0-9_-]: SKILL_NAME_CHARS of zcnb/logs/skills.py */

static uint64_t hash_bytes(uint64_t h, const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ULL; }
    return h;
}

static int has_prefix(const char *p, const char *e, const char *lit, size_t n) {
    return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0;
}

static int contains_ci(const char *s, Py_ssize_t n, const char *word) {  /* ASCII lower-case search */
    size_t w = strlen(word);
    for (Py_ssize_t i = 0; i + (Py_ssize_t)w <= n; i++) {
        size_t k = 0;
        while (k < w) {
            unsigned char c = (unsigned char)s[i + k];
            if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
            if (c != (unsigned char)word[k]) break;
            k++;
        }
        if (k == w) return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- counts: (cat, bucket, bytes) -> n */
typedef struct {
    uint64_t h; long long bucket; long long count; char *s; Py_ssize_t n; char cat; char hasb; char used;
} CEnt;
typedef struct { CEnt *e; size_t cap, used; } CTab;

static int ctab_grow(CTab *t) {
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    CEnt *ne = calloc(ncap, sizeof(CEnt));
    if (!ne) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->e[i].used) continue;
        size_t j = t->e[i].h & (ncap - 1);
        while (ne[j].used) j = (j + 1) & (ncap - 1);
        ne[j] = t->e[i];
    }
    free(t->e);
    t->e = ne;
    t->cap = ncap;
    return 0;
}

static int ctab_add(CTab *t, char cat, int hasb, long long b, const char *s, Py_ssize_t n, long long k) {
    if ((t->used + 1) * 2 > t->cap && ctab_grow(t) < 0) return -1;
    uint64_t h = hash_bytes(1469598103934665603ULL ^ (uint64_t)cat ^ ((uint64_t)b * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)hasb,
                            s, n);
    size_t j = h & (t->cap - 1);
    while (t->e[j].used) {
        CEnt *x = &t->e[j];
        if (x->h == h && x->cat == cat && x->hasb == hasb && x->bucket == b && x->n == n && memcmp(x->s, s, n) == 0) {
            x->count += k;
            return 0;
        }
        j = (j + 1) & (t->cap - 1);
    }
    char *copy = malloc(n ? n : 1);
    if (!copy) return -1;
    memcpy(copy, s, n);
    t->e[j] = (CEnt){h, b, k, copy, n, cat, (char)hasb, 1};
    t->used++;
    return 0;
}

/* ---------------------------------------------------------------- error/warning groups */
typedef struct {
    uint64_t h; long long bucket; long long count; double first, last;
    char *scope; Py_ssize_t scope_n; char *norm; Py_ssize_t norm_n; char *ex; Py_ssize_t ex_n;
    int flags; char level; char hasb; char hasts;
} Grp;

typedef struct {
    PyObject_HEAD
    int iso; int width; char *ident; Py_ssize_t ident_n; int has_ident;
    CTab counts;
    Grp *groups; size_t ngroups, capgroups;
    long *gidx; size_t gcap; size_t gset_start;  /* hash of the current group set: indices into groups */
    int set_open; int set_hasb; long long set_bucket; int set_haspid; long long set_pid;
    char *norm; Py_ssize_t norm_cap; char *low; Py_ssize_t low_cap;
    long long lines, debug, alloc_w, free_w, deinit_w, raw_banners;
    int has_first; double first, last;
    int has_pid; long long last_pid;
    double *pid_ts; long long *pid_v; size_t npids, cappids;
    double *ban_ts; size_t nban, capban;
    char reason[160]; int failed;
    /* the previous line's syslog prefix and what it meant (most lines repeat it: same second, same pid) */
    char pre[128]; Py_ssize_t pre_n; int pre_skip; double pre_ts; long long pre_b; int pre_haspid; long long pre_pid;
} Scanner;

static int push_pid(Scanner *s, double ts, long long pid) {
    if (s->npids == s->cappids) {
        size_t nc = s->cappids ? s->cappids * 2 : 16;
        double *a = realloc(s->pid_ts, nc * sizeof(double));
        if (!a) return -1;
        s->pid_ts = a;
        long long *b = realloc(s->pid_v, nc * sizeof(long long));
        if (!b) return -1;
        s->pid_v = b;
        s->cappids = nc;
    }
    s->pid_ts[s->npids] = ts;
    s->pid_v[s->npids++] = pid;
    return 0;
}

static int push_banner(Scanner *s, double ts) {
    if (s->nban == s->capban) {
        size_t nc = s->capban ? s->capban * 2 : 16;
        double *a = realloc(s->ban_ts, nc * sizeof(double));
        if (!a) return -1;
        s->ban_ts = a;
        s->capban = nc;
    }
    s->ban_ts[s->nban++] = ts;
    return 0;
}

static void gset_close(Scanner *s) {  /* a new bucket/pid/chunk starts a new set of groups */
    if (s->gcap && s->ngroups > s->gset_start) memset(s->gidx, 0xff, s->gcap * sizeof(long));
    s->gset_start = s->ngroups;
    s->set_open = 0;
}

static int gset_grow(Scanner *s) {
    size_t ncap = s->gcap ? s->gcap * 2 : 64;
    long *ni = malloc(ncap * sizeof(long));
    if (!ni) return -1;
    memset(ni, 0xff, ncap * sizeof(long));
    for (size_t g = s->gset_start; g < s->ngroups; g++) {
        size_t j = s->groups[g].h & (ncap - 1);
        while (ni[j] >= 0) j = (j + 1) & (ncap - 1);
        ni[j] = (long)g;
    }
    free(s->gidx);
    s->gidx = ni;
    s->gcap = ncap;
    return 0;
}

/* _NUMB: 0x[0-9a-fA-F]+ -> "N", \d+(?:\.\d+)? -> "N" (left to right, like re.sub) */
static Py_ssize_t normalise(Scanner *s, const char *m, Py_ssize_t n) {
    if (s->norm_cap < n + 1) {
        char *nb = realloc(s->norm, n + 1);
        if (!nb) return -1;
        s->norm = nb;
        s->norm_cap = n + 1;
    }
    Py_ssize_t i = 0, o = 0;
    while (i < n) {
        unsigned char c = (unsigned char)m[i];
        if (c == '0' && i + 2 < n && m[i + 1] == 'x' && is_hex((unsigned char)m[i + 2])) {
            i += 2;
            while (i < n && is_hex((unsigned char)m[i])) i++;
            s->norm[o++] = 'N';
        } else if (is_digit(c)) {
            while (i < n && is_digit((unsigned char)m[i])) i++;
            if (i + 1 < n && m[i] == '.' && is_digit((unsigned char)m[i + 1])) {
                i++;
                while (i < n && is_digit((unsigned char)m[i])) i++;
            }
            s->norm[o++] = 'N';
        } else {
            s->norm[o++] = (char)c;
            i++;
        }
    }
    return o;
}

static char *dup_bytes(const char *p, Py_ssize_t n) {
    char *c = malloc(n ? n : 1);
    if (c) memcpy(c, p, n);
    return c;
}

static int add_group(Scanner *s, char level, const char *scope, Py_ssize_t sn, const char *msg, Py_ssize_t mn,
                     int hasb, long long b, int hasts, double ts) {
    Py_ssize_t nn = normalise(s, msg, mn);
    if (nn < 0) return -1;
    /* the words _level_hit looks for are part of the key (as in logscan._flags): an example stands for all */
    static const char *words[] = {"alloc", "free", "deinit", "leaked", "memory address", "double free", "unauthori"};
    static const size_t wlen[] = {5, 4, 6, 6, 14, 11, 9};
    if (s->low_cap < mn + 1) {
        char *nb = realloc(s->low, mn + 1);
        if (!nb) return -1;
        s->low = nb;
        s->low_cap = mn + 1;
    }
    for (Py_ssize_t i = 0; i < mn; i++) {  /* bytes.lower(): ASCII only */
        unsigned char c = (unsigned char)msg[i];
        s->low[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    int flags = 0;
    const char *lw = s->low;
    for (Py_ssize_t i = 0; i < mn; i++) {  /* one pass: only a few letters can start a word */
        int k0, k1;
        switch (lw[i]) {
        case 'a': k0 = 0; k1 = 0; break;
        case 'f': k0 = 1; k1 = 1; break;
        case 'd': k0 = 2; k1 = 5; break;
        case 'l': k0 = 3; k1 = 3; break;
        case 'm': k0 = 4; k1 = 4; break;
        case 'u': k0 = 6; k1 = 6; break;
        default: continue;
        }
        for (int k = k0; k <= k1; k += 3) {
            if ((size_t)(mn - i) >= wlen[k] && memcmp(lw + i, words[k], wlen[k]) == 0) flags |= 1 << k;
        }
    }
    uint64_t h = hash_bytes(hash_bytes(1469598103934665603ULL ^ (uint64_t)level ^ ((uint64_t)flags << 8), scope, sn) ^ 0xff,
                            s->norm, nn);
    if ((s->ngroups - s->gset_start + 1) * 2 > s->gcap && gset_grow(s) < 0) return -1;
    size_t j = h & (s->gcap - 1);
    while (s->gidx[j] >= 0) {
        Grp *g = &s->groups[s->gidx[j]];
        if (g->h == h && g->level == level && g->flags == flags && g->scope_n == sn && g->norm_n == nn && memcmp(g->scope, scope, sn) == 0
            && memcmp(g->norm, s->norm, nn) == 0) {
            g->count++;
            if (hasts) g->last = ts;  /* the group's last line */
            return 0;
        }
        j = (j + 1) & (s->gcap - 1);
    }
    if (s->ngroups == s->capgroups) {
        size_t nc = s->capgroups ? s->capgroups * 2 : 64;
        Grp *ng = realloc(s->groups, nc * sizeof(Grp));
        if (!ng) return -1;
        s->groups = ng;
        s->capgroups = nc;
    }
    Grp *g = &s->groups[s->ngroups];
    memset(g, 0, sizeof(Grp));
    g->h = h; g->flags = flags; g->level = level; g->hasb = (char)hasb; g->bucket = b; g->count = 1;
    g->hasts = (char)hasts; g->first = g->last = ts;
    g->scope = dup_bytes(scope, sn); g->scope_n = sn;
    g->norm = dup_bytes(s->norm, nn); g->norm_n = nn;
    g->ex = dup_bytes(msg, mn); g->ex_n = mn;
    if (!g->scope || !g->norm || !g->ex) return -1;
    s->gidx[j] = (long)s->ngroups++;
    return 0;
}

/* ---------------------------------------------------------------- one message (text after the syslog prefix) */
/* Next '\n', ':' or '[' in [p, lim), or lim: one vector pass finds the line end and every candidate. */
static inline const char *find3(const char *p, const char *lim) {
#ifdef __SSE2__
    const __m128i nl = _mm_set1_epi8('\n'), co = _mm_set1_epi8(':'), br = _mm_set1_epi8('[');
    while (lim - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        int mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, nl), _mm_cmpeq_epi8(v, co)),
                                                  _mm_cmpeq_epi8(v, br)));
        if (mask) return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < lim && *p != '\n' && *p != ':' && *p != '[') p++;
    return p;
}

static inline const char *line_end(const char *p, const char *lim) {
    const char *nl = memchr(p, '\n', lim - p);
    return nl ? nl : lim;
}

/* The level prefix (error|warning|debug)(?:\(([^)\n]*)\))?: (...) at the start of the message [m, e). */
static int scan_level(Scanner *s, const char *m, const char *e, int hasb, long long b, int hasts, double ts) {
    char level;
    const char *w;
    if (*m == 'e' && has_prefix(m, e, "error", 5)) { level = 'e'; w = m + 5; }
    else if (*m == 'w' && has_prefix(m, e, "warning", 7)) { level = 'w'; w = m + 7; }
    else if (*m == 'd' && has_prefix(m, e, "debug", 5)) { level = 'd'; w = m + 5; }
    else return 0;
    const char *sc = w, *sce = w, *text = NULL;
    if (w < e && *w == '(') {
        const char *close = memchr(w + 1, ')', e - (w + 1));
        if (close && close + 2 < e && close[1] == ':' && close[2] == ' ') { sc = w + 1; sce = close; text = close + 3; }
    } else if (w + 2 <= e && w[0] == ':' && w[1] == ' ') {
        text = w + 2;
    }
    if (!text) return 0;
    Py_ssize_t tn = e - text;
    if (level != 'd') return add_group(s, level, sc, sce - sc, text, tn, hasb, b, hasts, ts);
    s->debug++;
    if (contains_ci(text, tn, "alloc")) s->alloc_w++;
    if (contains_ci(text, tn, "free")) s->free_w++;
    if (contains_ci(text, tn, "deinit")) s->deinit_w++;
    if (has_prefix(text, e, "[gateway] ", 10)) {  /* ^\[gateway\] ([A-Z]+) (/\S*) */
        const char *p = text + 10, *q = p;
        while (q < e && *q >= 'A' && *q <= 'Z') q++;
        if (q > p && q + 1 < e && q[0] == ' ' && q[1] == '/') {
            const char *r = q + 2;
            while (r < e && !is_space((unsigned char)*r)) r++;
            if (ctab_add(&s->counts, 'R', hasb, b, p, r - p, 1) < 0) return -1;
        }
    }
    return 0;
}

/* A bracket tag at o ('['), data up to lim: returns where the match ends (o + 1 when there is none).
 * The literals hold no '\n', so checking them against lim never crosses the line end. */
static const char *scan_tag(Scanner *s, const char *o, const char *lim, int hasb, long long b, int *err) {
    const char *after = o + 1, *e = lim;
    if (has_prefix(after, e, "agent] tool ", 12)) {
        const char *t = after + 12;
        if (has_prefix(t, e, "skill args=", 11)) {
            const char *x = t + 11;
            e = line_end(x, lim);
            while (x < e) {  /* TOOL_SKILL_ARGS of zcnb/logs/skills.py: the first "name":[ \t\r\f\v]*"([^"\n]*)" that completes (lazy [^\n]*?) */
                const char *nm = memchr(x, '"', e - x);
                if (!nm) break;
                if (has_prefix(nm, e, "\"name\":", 7)) {
                    const char *v = nm + 7;
                    while (v < e && is_space((unsigned char)*v)) v++;
                    if (v < e && *v == '"') {
                        const char *z = memchr(v + 1, '"', e - (v + 1));
                        if (z) {
                            if (z > v + 1 && ctab_add(&s->counts, 'S', hasb, b, v + 1, z - (v + 1), 1) < 0) *err = 1;
                            return z + 1;
                        }
                    }
                }
                x = nm + 1;
            }
        }
        const char *q = t;  /* ([\w.-]+) args= */
        while (q < e && (is_word((unsigned char)*q) || *q == '.' || *q == '-')) q++;
        if (q > t && has_prefix(q, e, " args=", 6)) {
            if (ctab_add(&s->counts, 'O', hasb, b, t, q - t, 1) < 0) *err = 1;
            return q + 6;
        }
    } else if (has_prefix(after, e, "heartbeat] ", 11)) {
        if (ctab_add(&s->counts, 'K', hasb, b, "heartbeat", 9, 1) < 0) *err = 1;
        return after + 11;
    } else if (has_prefix(after, e, "ws] ", 4)) {
        if (ctab_add(&s->counts, 'K', hasb, b, "ws", 2, 1) < 0) *err = 1;
        return after + 4;
    }
    return o + 1;
}

/* One message from m to its line end (the next '\n', or lim): skill:NAME tokens, bracket tags, level.
 * Sets *eout to the line end. 0 ok, -1 out of memory. */
static int scan_message(Scanner *s, const char *m, const char *lim, int hasb, long long b, int hasts, double ts,
                        const char **eout) {
    const char *q = m, *tok_end = m, *tag_end = m, *e = NULL;
    int err = 0;
    for (;;) {
        const char *c = find3(q, lim);
        if (c >= lim || *c == '\n') { e = c; break; }
        if (*c == ':') {  /* skill:([A-Za-z0-9_-]+), non-overlapping like re.findall */
            if (c - 5 >= tok_end && memcmp(c - 5, "skill", 5) == 0 && c + 1 < lim && is_name((unsigned char)c[1])) {
                const char *r = c + 1;
                while (r < lim && is_name((unsigned char)*r)) r++;
                if (ctab_add(&s->counts, 'T', hasb, b, c + 1, r - (c + 1), 1) < 0) return -1;
                tok_end = r;
            }
        } else if (c >= tag_end) {  /* '[' outside the previous tag match */
            tag_end = scan_tag(s, c, lim, hasb, b, &err);
            if (err) return -1;
        }
        q = c + 1;
    }
    *eout = e;
    return m < e ? scan_level(s, m, e, hasb, b, hasts, ts) : 0;
}

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

/* The timestamp text [p, q) already matched ISO_LINE's pattern; mirror datetime.fromisoformat + timestamp(). */
static int parse_ts(const char *p, const char *q, double *out, Scanner *s) {
    int Y = 0, M = 0, D = 0, h = 0, mi = 0, sec = 0, us = 0, off = 0;
    digits(p, 4, &Y); digits(p + 5, 2, &M); digits(p + 8, 2, &D);
    digits(p + 11, 2, &h); digits(p + 14, 2, &mi); digits(p + 17, 2, &sec);
    const char *r = p + 19;
    if (r < q && (*r == '.' || *r == ',')) {
        const char *f = ++r;
        while (r < q && is_digit((unsigned char)*r)) r++;
        int nd = (int)(r - f);
        if (nd > 6) {
            snprintf(s->reason, sizeof s->reason, "a timestamp with %d fraction digits", nd);
            return TS_UNSURE;
        }
        digits(f, nd, &us);
        for (int i = nd; i < 6; i++) us *= 10;
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
    long long secs = days_from_civil(Y, M, D) * 86400LL + h * 3600 + mi * 60 + sec - off;
    if (secs > 9000000000LL || secs < -9000000000LL) {  /* beyond 2^53 microseconds: rounding would differ */
        snprintf(s->reason, sizeof s->reason, "a timestamp far from today (year %d)", Y);
        return TS_UNSURE;
    }
    *out = (double)(secs * 1000000LL + us) / 1e6;
    return TS_OK;
}

/* Python's float floor division, then int(...) * width */
static long long bucket_of(double ts, int width) {
    double wx = (double)width, mod = fmod(ts, wx), div = (ts - mod) / wx, fl;
    if (mod && ((wx < 0) != (mod < 0))) div -= 1.0;
    if (div) { fl = floor(div); if (div - fl > 0.5) fl += 1.0; }
    else fl = copysign(0.0, ts / wx);
    return (long long)fl * width;
}

typedef struct { const char *ts_end; const char *ident; const char *ident_end; const char *pid; const char *pid_end;
                 const char *msg; } Prefix;

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
    const char *q = r + 1;
    if (!match_ident(q, e, x)) {
        const char *h = q;
        while (h < e && !is_space((unsigned char)*h)) h++;
        if (h == q || h >= e || *h != ' ') return 0;
        if (!match_ident(h + 1, e, x)) return 0;
    }
    if (x->msg < e && *x->msg == ' ') x->msg++;
    return 1;
}

/* ---------------------------------------------------------------- the scan loops */
/* One line starting at p (its end is the next '\n', or lim); *eout = the line end. 0 ok, 1 gave way, -1 no memory. */
static int iso_line(Scanner *s, const char *p, const char *lim, const char **eout) {
    double ts;
    long long b, pid;
    int haspid;
    const char *msg;
    if (s->pre_n && lim - p > s->pre_n && memcmp(p, s->pre, s->pre_n) == 0) {
        if (s->pre_skip) { *eout = line_end(p, lim); return 0; }
        ts = s->pre_ts; b = s->pre_b; haspid = s->pre_haspid; pid = s->pre_pid; msg = p + s->pre_n;
    } else {
        const char *e = line_end(p, lim);
        *eout = e;
        Prefix x;
        if (!match_iso(p, e, &x)) return 0;
        Py_ssize_t pn = x.msg - p;
        /* cacheable when the prefix ends in ": ": the same bytes then always match the same way */
        int cache = pn <= (Py_ssize_t)sizeof s->pre && pn >= 2 && x.msg[-2] == ':' && x.msg[-1] == ' ';
        s->pre_n = 0;
        if (s->has_ident && ((x.ident_end - x.ident) != s->ident_n || memcmp(x.ident, s->ident, s->ident_n) != 0)) {
            if (cache) { memcpy(s->pre, p, pn); s->pre_n = pn; s->pre_skip = 1; }
            return 0;
        }
        int r = parse_ts(p, x.ts_end, &ts, s);
        if (r == TS_UNSURE) return 1;
        if (r == TS_INVALID) {
            if (cache) { memcpy(s->pre, p, pn); s->pre_n = pn; s->pre_skip = 1; }
            return 0;
        }
        haspid = x.pid && x.pid_end - x.pid < 12;
        pid = 0;
        if (haspid) for (const char *d = x.pid; d < x.pid_end; d++) pid = pid * 10 + (*d - '0');
        b = bucket_of(ts, s->width);
        msg = x.msg;
        if (cache) {
            memcpy(s->pre, p, pn); s->pre_n = pn; s->pre_skip = 0;
            s->pre_ts = ts; s->pre_b = b; s->pre_haspid = haspid; s->pre_pid = pid;
        }
    }
    s->lines++;
    if (!s->has_first) { s->first = s->last = ts; s->has_first = 1; }
    else { if (ts < s->first) s->first = ts; if (ts > s->last) s->last = ts; }
    if (haspid && (!s->has_pid || s->last_pid != pid)) {
        if (push_pid(s, ts, pid) < 0) return -1;
        s->has_pid = 1;
        s->last_pid = pid;
    }
    if (!s->set_open || s->set_bucket != b || s->set_haspid != haspid || (haspid && s->set_pid != pid)) {
        gset_close(s);
        s->set_open = 1; s->set_bucket = b; s->set_haspid = haspid; s->set_pid = pid;
    }
    if (scan_message(s, msg, lim, 1, b, 1, ts, eout) < 0) return -1;
    if (!haspid) {  /* one startup banner per line at most */
        const char *e = *eout;
        for (const char *c = msg; e - c >= 11 && (c = memchr(c, 'M', e - c)) != NULL; c++) {
            if (has_prefix(c, e, "Main Token:", 11)) { if (push_banner(s, ts) < 0) return -1; break; }
        }
    }
    return 0;
}

static int raw_line(Scanner *s, const char *p, const char *lim, const char **eout) {
    if (scan_message(s, p, lim, 0, 0, 0, 0.0, eout) < 0) return -1;
    const char *e = *eout;
    for (const char *c = p; e - c >= 11 && (c = memchr(c, 'M', e - c)) != NULL; c++) {  /* every banner */
        if (has_prefix(c, e, "Main Token:", 11)) s->raw_banners++;
    }
    s->lines++;
    return 0;
}

/* Lines in [buf, buf+n); the last one may lack its newline. 0 ok, 1 gave way, -1 out of memory. */
static int scan_lines(Scanner *s, const char *buf, Py_ssize_t n) {
    const char *p = buf, *end = buf + n, *e;
    while (p < end) {
        int r = s->iso ? iso_line(s, p, end, &e) : raw_line(s, p, end, &e);
        if (r) return r;
        p = e + 1;
    }
    return 0;
}

#define MAX_LINE ((Py_ssize_t)4 << 20)  /* logchunks.MAX_LINE: longer lines are cut there; Python judges those */
#define WINDOW ((off_t)32 << 20)        /* mapped at a time: bounds the file pages counted in RSS */

/* Lines whose first byte lies in [start, end) of the file (logchunks.iter_chunks' rule), through mmap windows. */
static int scan_path(Scanner *s, int fd, off_t size, off_t start, off_t end) {
    long page = sysconf(_SC_PAGESIZE);
    if (end > size) end = size;
    off_t pos = start;
    if (pos > 0 && pos < end) {  /* the line that started before `start` belongs to the previous range */
        char c;
        if (pread(fd, &c, 1, pos - 1) != 1) return -2;
        if (c != '\n') {
            for (;;) {
                char tmp[65536];
                ssize_t k = pread(fd, tmp, sizeof tmp, pos);
                if (k < 0) return -2;
                if (k == 0) return 0;
                char *nl = memchr(tmp, '\n', (size_t)k);
                if (nl) { pos += nl - tmp + 1; break; }
                pos += k;
            }
        }
    }
    while (pos < end) {
        off_t off = pos - pos % page;
        off_t len = size - off < WINDOW ? size - off : WINDOW;
        char *map = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, off);
        if (map == MAP_FAILED) return -2;
        madvise(map, (size_t)len, MADV_SEQUENTIAL);
        const char *p = map + (pos - off), *lim = map + len;
        int eof = off + len == size, r = 0;
        if (!eof) {  /* complete lines only: the rest is mapped again with the next window */
            const char *last = memrchr(p, '\n', lim - p);
            lim = last ? last + 1 : p;
        }
        while (p < lim && off + (p - map) < end) {
            const char *e;
            r = s->iso ? iso_line(s, p, lim, &e) : raw_line(s, p, lim, &e);
            if (!r && e - p > MAX_LINE) {
                snprintf(s->reason, sizeof s->reason, "a line longer than %zd bytes", (size_t)MAX_LINE);
                r = 1;
            }
            if (r) break;
            p = e + 1;
        }
        if (p > lim) p = lim;
        off_t next = off + (p - map);
        munmap(map, (size_t)len);
        if (r) return r;
        if (next == pos && next < end) {  /* no complete line in a whole window */
            snprintf(s->reason, sizeof s->reason, "a line longer than %zd bytes", (size_t)MAX_LINE);
            return 1;
        }
        pos = next;
    }
    return 0;
}

/* ---------------------------------------------------------------- Python type */
static void Scanner_dealloc(Scanner *s) {
    for (size_t i = 0; i < s->counts.cap; i++) if (s->counts.e[i].used) free(s->counts.e[i].s);
    free(s->counts.e);
    for (size_t g = 0; g < s->ngroups; g++) { free(s->groups[g].scope); free(s->groups[g].norm); free(s->groups[g].ex); }
    free(s->groups); free(s->gidx); free(s->norm); free(s->low); free(s->ident);
    free(s->pid_ts); free(s->pid_v); free(s->ban_ts);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int Scanner_init(Scanner *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"iso", "ident", "width", NULL};
    int iso = 1, width = 60;
    PyObject *ident = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$pOi", names, &iso, &ident, &width)) return -1;
    if (width < 1) { PyErr_SetString(PyExc_ValueError, "width must be >= 1"); return -1; }
    s->iso = iso;
    s->width = width;
    if (ident != Py_None) {
        char *p; Py_ssize_t n;
        if (PyBytes_AsStringAndSize(ident, &p, &n) < 0) return -1;
        s->ident = dup_bytes(p, n);
        if (!s->ident) { PyErr_NoMemory(); return -1; }
        s->ident_n = n;
        s->has_ident = 1;
    }
    return 0;
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
    if (r < 0) return PyErr_NoMemory();
    if (r > 0) { s->failed = 1; Py_RETURN_FALSE; }
    Py_RETURN_TRUE;
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
    if (fd < 0 || fstat(fd, &st) < 0) r = -2;
    else r = scan_path(s, fd, st.st_size, (off_t)start, (off_t)end);
    if (r == -2) err = errno;
    if (fd >= 0) close(fd);
    Py_END_ALLOW_THREADS
    if (r == -2) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    if (r < 0) return PyErr_NoMemory();
    if (r > 0) { s->failed = 1; Py_RETURN_FALSE; }
    Py_RETURN_TRUE;
}

static PyObject *opt_float(int has, double v) { return has ? PyFloat_FromDouble(v) : Py_NewRef(Py_None); }
static PyObject *opt_bucket(int has, long long b) { return has ? PyLong_FromLongLong(b) : Py_NewRef(Py_None); }

static PyObject *Scanner_result(Scanner *s, PyObject *Py_UNUSED(ignored)) {
    PyObject *counts = PyList_New(0), *groups = PyList_New(0), *pids = PyList_New(0), *banners = PyList_New(0);
    PyObject *out = NULL;
    if (!counts || !groups || !pids || !banners) goto done;
    for (size_t i = 0; i < s->counts.cap; i++) {
        CEnt *x = &s->counts.e[i];
        if (!x->used) continue;
        PyObject *t = Py_BuildValue("(CNy#L)", x->cat, opt_bucket(x->hasb, x->bucket), x->s, x->n, x->count);
        if (!t || PyList_Append(counts, t) < 0) { Py_XDECREF(t); goto done; }
        Py_DECREF(t);
    }
    for (size_t i = 0; i < s->ngroups; i++) {
        Grp *g = &s->groups[i];
        PyObject *t = Py_BuildValue("(NsLy#y#NN)", opt_bucket(g->hasb, g->bucket), g->level == 'e' ? "error" : "warning",
                                    g->count, g->scope, g->scope_n, g->ex, g->ex_n,
                                    opt_float(g->hasts, g->first), opt_float(g->hasts, g->last));
        if (!t || PyList_Append(groups, t) < 0) { Py_XDECREF(t); goto done; }
        Py_DECREF(t);
    }
    for (size_t i = 0; i < s->npids; i++) {
        PyObject *t = Py_BuildValue("(dL)", s->pid_ts[i], s->pid_v[i]);
        if (!t || PyList_Append(pids, t) < 0) { Py_XDECREF(t); goto done; }
        Py_DECREF(t);
    }
    for (size_t i = 0; i < s->nban; i++) {
        PyObject *t = PyFloat_FromDouble(s->ban_ts[i]);
        if (!t || PyList_Append(banners, t) < 0) { Py_XDECREF(t); goto done; }
        Py_DECREF(t);
    }
    for (long long i = 0; i < s->raw_banners; i++) {
        if (PyList_Append(banners, Py_None) < 0) goto done;
    }
    out = Py_BuildValue("{sLsNsNsOsOsOsOsLs(LLL)}", "lines", s->lines, "first", opt_float(s->has_first, s->first),
                        "last", opt_float(s->has_first, s->last), "pids", pids, "banners", banners, "counts", counts,
                        "groups", groups, "debug", s->debug, "alloc", s->alloc_w, s->free_w, s->deinit_w);
done:
    Py_XDECREF(counts); Py_XDECREF(groups); Py_XDECREF(pids); Py_XDECREF(banners);
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
    {"reason", (getter)Scanner_reason, NULL, "why feed() returned False (None otherwise)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zcnb.logs._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(*, iso, ident, width): one-pass counter over buffers of complete log lines",
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
    .tp_init = (initproc)Scanner_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef scanmodule = {
    PyModuleDef_HEAD_INIT, "zcnb.logs._scan", "Native one-pass log counter for zcnb.logs.summarize_logs.", -1, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scanmodule);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) { Py_DECREF(m); return NULL; }
    if (PyModule_AddIntConstant(m, "VERSION", 1) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
