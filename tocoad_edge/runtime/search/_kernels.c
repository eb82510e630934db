/* The searches' inner loops in C, called through ctypes (kernels.py), which releases the GIL for each call.

Three loops that numpy (and ONNX Runtime, for the bound) ran as dozens of small calls per frame: the projected
search's re-rank, the bounded re-check over a bank share, and the refined search's whole smoothed-max loop. Each
numpy call retakes the GIL, so two threads that split a frame hand it back and forth, each re-rank gathered copies
of the bank rows before it could read them, and the bound was written out in full before its survivors were
picked. Here each is one call that reads the rows where they lie. The numpy code in projected.py, bounded.py and
refined.py stays the reference (and the path where this file was not built); the tests hold each loop to it.

Every index read from the caller's arrays is checked before it is used: a bad label is an error code, never a read
outside the bank. No allocation, no global state: any number of threads may call at once (the one shared state, a
split smoothed-max loop's, is the caller's memory, passed to both of its threads). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* GCC on x86-64 glibc builds each loop for AVX-512, AVX2 and the baseline and picks one at load time, so one build
   runs fast on any x86-64 CPU; elsewhere (aarch64: NEON is the baseline) the compiler's vectorised baseline. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
#define TK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* Every cloned function starts with TK_CLEAN_EXIT. An AVX or AVX-512 function must leave the vector registers'
   upper halves zeroed (vzeroupper) before any SSE-encoded code runs on its thread, or that code (the interpreter,
   numpy's and OpenCV's baseline loops, the next frame's resize) runs several times slower until something zeroes
   them, on the CPUs measured. GCC 12 omits the vzeroupper at the exits of these clones, so it is done here at
   every return; on a CPU without AVX the instruction is skipped (the baseline clone runs there). */
static void tk_clean_upper(int *unused) {
    (void)unused;
    if (__builtin_cpu_supports("avx")) __asm__ volatile("vzeroupper");
}
#define TK_CLEAN_EXIT int tk_exit_ __attribute__((cleanup(tk_clean_upper))) = 0
#else
#define TK_CLONES
#define TK_CLEAN_EXIT (void)0
#endif
#define TK_EXPORT __attribute__((visibility("default")))

/* The interface's version: kernels.py refuses a library built from another version of this file (an editable
   install whose extension was not rebuilt after an update). */
#define TK_INTERFACE 6
TK_EXPORT int64_t tk_interface(void) { return TK_INTERFACE; }

/* Error codes (kernels.py turns them into expected/got errors). */
#define TK_BAD_LABEL (-1)
#define TK_BAD_NEIGHBOUR (-2)
#define TK_BAD_LEND (-3)
#define TK_BAD_KERNEL (-4)

/* The most patches one smoothed-max kernel window covers (31 × 31 taps): the loop's list of a window's patches and
   a split pass's shared distances are that long. */
#define TK_MAX_WINDOW 1024

static inline float dot(const float *a, const float *b, int64_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

static inline float squared_distance(const float *a, const float *b, int64_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        acc += d * d;
    }
    return acc;
}

/* The projected search's re-rank, with lending (projected.py), in two steps so that the threads of a split frame
can each walk and rank only their own rows and meet once between the steps.

tk_rank_and_lend: q [rows, dim], the queries; labels [rows, k], their candidate bank rows. Each row's candidates
are ranked by |b|² − 2 q·b (``rank`` [rows, k]), and with ``lend`` > 0 its ``lend`` best-ranked rows are written
to ``lent`` [rows, lend] (best first; a tie keeps the first in candidate order). */
TK_CLONES TK_EXPORT int64_t tk_rank_and_lend(const float *q, int64_t rows, int64_t dim, const uint64_t *labels,
                                             int64_t k, const float *bank, const float *norms, int64_t entries,
                                             int64_t lend, float *rank, int64_t *lent) {
    TK_CLEAN_EXIT;
    if (lend < 0 || lend > k || k > 64) return TK_BAD_LEND;
    for (int64_t i = 0; i < rows * k; i++)
        if (labels[i] >= (uint64_t)entries) return TK_BAD_LABEL;
    for (int64_t i = 0; i < rows; i++) {
        const float *qi = q + i * dim;
        float *ri = rank + i * k;
        for (int64_t j = 0; j < k; j++) {
            int64_t row = (int64_t)labels[i * k + j];
            ri[j] = norms[row] - 2.0f * dot(qi, bank + row * dim, dim);
        }
        uint64_t taken = 0; /* selection of the lend best: lend <= k <= 64 */
        for (int64_t t = 0; t < lend; t++) {
            int64_t arg = -1;
            for (int64_t j = 0; j < k; j++)
                if (!(taken >> j & 1u) && (arg < 0 || ri[j] < ri[arg])) arg = j;
            taken |= (uint64_t)1 << arg;
            lent[i * lend + t] = (int64_t)labels[i * k + arg];
        }
    }
    return 0;
}

/* tk_answer: for each row, the best-ranked of its own candidates (labels, rank from tk_rank_and_lend) and of the
rows lent by its four neighbours (``neighbours`` [rows, 4]: row numbers into ``lent`` [lent_rows, lend], the whole
frame's), and ``out`` [rows] the full distance to it by differences (a true distance to that row, never below it by
cancellation). A tie keeps the first: own candidates in order, then the neighbours' in order, as numpy's argmin. */
TK_CLONES TK_EXPORT int64_t tk_answer(const float *q, int64_t rows, int64_t dim, const uint64_t *labels, int64_t k,
                                      const float *rank, const float *bank, const float *norms, int64_t entries,
                                      const int64_t *neighbours, const int64_t *lent, int64_t lent_rows,
                                      int64_t lend, float *out) {
    TK_CLEAN_EXIT;
    if (lend < 0 || k > 64) return TK_BAD_LEND;
    for (int64_t i = 0; i < rows * k; i++)
        if (labels[i] >= (uint64_t)entries) return TK_BAD_LABEL;
    if (lend > 0) {
        for (int64_t i = 0; i < rows * 4; i++)
            if (neighbours[i] < 0 || neighbours[i] >= lent_rows) return TK_BAD_NEIGHBOUR;
        for (int64_t i = 0; i < lent_rows * lend; i++)
            if (lent[i] < 0 || lent[i] >= entries) return TK_BAD_LABEL;
    }
    for (int64_t i = 0; i < rows; i++) {
        const float *qi = q + i * dim;
        int64_t winner = (int64_t)labels[i * k];
        float best = rank[i * k];
        for (int64_t j = 1; j < k; j++)
            if (rank[i * k + j] < best) {
                best = rank[i * k + j];
                winner = (int64_t)labels[i * k + j];
            }
        for (int64_t side = 0; side < (lend > 0 ? 4 : 0); side++) {
            const int64_t *from = lent + neighbours[i * 4 + side] * lend;
            for (int64_t t = 0; t < lend; t++) {
                float v = norms[from[t]] - 2.0f * dot(qi, bank + from[t] * dim, dim);
                if (v < best) {
                    best = v;
                    winner = from[t];
                }
            }
        }
        out[i] = sqrtf(squared_distance(qi, bank + winner * dim, dim));
    }
    return 0;
}

/* The bounded re-check over one bank share (bounded.py, ``_nearest_in_rows``): the lower bound of every row and the
full distance of the rows it cannot rule out, in one pass over the share.

The share's rows [rows, kdim] of the bound's coordinates ([b', r(b), |·|²]) are stored in blocks of TK_BLOCK rows,
each block [kdim][TK_BLOCK] (``tk_block_rows``), so that the bound of a block for up to TK_GROUP queries is
TK_BLOCK-wide vector multiply-adds kept in registers, and each block is read from memory once for all the queries.

qa [n, kdim]: the queries' coordinates (−2 q~, 1); q_sq [n]: |q~|²; best [n]: squared true distances to some rows,
lowered in place to the nearest row of the share. A row is a survivor while its bound is within the rounding
margin of the best so far; the threshold tightens as the best falls. scratch: n · (kdim + 1) floats. Returns how
many full distances it computed. */
#define TK_BLOCK 16
#define TK_GROUP 4

TK_EXPORT int64_t tk_block_size(void) { return TK_BLOCK; }

TK_EXPORT void tk_block_rows(const float *rows_in, int64_t rows, int64_t kdim, float *blocked) {
    int64_t blocks = (rows + TK_BLOCK - 1) / TK_BLOCK;
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t c = 0; c < kdim; c++)
            for (int64_t r = 0; r < TK_BLOCK; r++) {
                int64_t j = b * TK_BLOCK + r;
                blocked[(b * kdim + c) * TK_BLOCK + r] = j < rows ? rows_in[j * kdim + c] : 0.0f;
            }
}

/* acc[u][r]: the bound of block row r for query u of a group of m (a constant once inlined, so acc stays in
   registers); weights [kdim][m]. */
static inline __attribute__((always_inline)) void group_bound(const float *block, const float *weights, int64_t kdim,
                                                              int m, float acc[TK_GROUP][TK_BLOCK]) {
    for (int u = 0; u < m; u++)
        for (int r = 0; r < TK_BLOCK; r++) acc[u][r] = 0.0f;
    for (int64_t c = 0; c < kdim; c++) {
        const float *column = block + c * TK_BLOCK;
        for (int u = 0; u < m; u++) {
            float w = weights[c * m + u];
#pragma omp simd
            for (int r = 0; r < TK_BLOCK; r++) acc[u][r] += w * column[r];
        }
    }
}

static inline float threshold_for(float nearest, float q_sq, float largest_sq, float rtol) {
    return nearest + rtol * (q_sq + largest_sq + nearest) - q_sq;
}

static inline __attribute__((always_inline)) int64_t
bounded_nearest(const float *qa, int64_t n, int64_t kdim, const float *blocked, int64_t rows, const float *q,
                int64_t dim, const float *bank_rows, const float *q_sq, float largest_sq, float rtol, float *best,
                float *scratch) {
    float *weights = scratch, *threshold = scratch + n * kdim;
    int64_t checked = 0;
    for (int64_t i = 0; i < n; i++) threshold[i] = threshold_for(best[i], q_sq[i], largest_sq, rtol);
    for (int64_t g = 0; g < n; g += TK_GROUP) {         /* each group's weights [kdim][m], after the groups before */
        int64_t m = n - g < TK_GROUP ? n - g : TK_GROUP;
        for (int64_t c = 0; c < kdim; c++)
            for (int64_t u = 0; u < m; u++) weights[g * kdim + c * m + u] = qa[(g + u) * kdim + c];
    }
    float acc[TK_GROUP][TK_BLOCK];
    int64_t blocks = (rows + TK_BLOCK - 1) / TK_BLOCK;
    for (int64_t b = 0; b < blocks; b++) {
        const float *block = blocked + b * kdim * TK_BLOCK;
        for (int64_t g = 0; g < n; g += TK_GROUP) {
            int m = (int)(n - g < TK_GROUP ? n - g : TK_GROUP);
            const float *w = weights + g * kdim;
            switch (m) { /* one specialisation per group size */
            case 1: group_bound(block, w, kdim, 1, acc); break;
            case 2: group_bound(block, w, kdim, 2, acc); break;
            case 3: group_bound(block, w, kdim, 3, acc); break;
            default: group_bound(block, w, kdim, TK_GROUP, acc); break;
            }
            for (int u = 0; u < m; u++) {
                int64_t i = g + u;
                for (int r = 0; r < TK_BLOCK; r++) {
                    int64_t j = b * TK_BLOCK + r;
                    if (acc[u][r] <= threshold[i] && j < rows) {
                        float d = squared_distance(bank_rows + j * dim, q + i * dim, dim);
                        checked++;
                        if (d < best[i]) {
                            best[i] = d;
                            threshold[i] = threshold_for(d, q_sq[i], largest_sq, rtol);
                        }
                    }
                }
            }
        }
    }
    return checked;
}

TK_CLONES TK_EXPORT int64_t tk_bounded_nearest(const float *qa, int64_t n, int64_t kdim, const float *blocked,
                                               int64_t rows, const float *q, int64_t dim, const float *bank_rows,
                                               const float *q_sq, float largest_sq, float rtol, float *best,
                                               float *scratch) {
    TK_CLEAN_EXIT;
    return bounded_nearest(qa, n, kdim, blocked, rows, q, dim, bank_rows, q_sq, largest_sq, rtol, best, scratch);
}

/* The refined search's ``smoothed-max`` image score (refined.py, ``max_smoothed``), its whole loop in one call on one
thread: the first stage's distances ``upper`` [P] (true distances to some bank rows, so upper bounds) on a grid of
``tiles`` × h × w patches are smoothed by the separable ``kernel`` (2·radius + 1 taps, mirrored borders with the
edge repeated, as OpenCV's BORDER_REFLECT); the cell with the largest smoothed bound has every patch under its kernel
re-checked exactly (the bounded search over the whole bank: bound coordinates lifted here with ``center`` [dim]
and ``directions`` [dim, p]), and this repeats until no cell that still holds an approximate distance can beat the
best cell whose patches are all exact (within ``refine_rtol``). ``score``: that cell's smoothed value;
``counts``: patches re-checked, full rows computed. ``exact`` [P]: scratch. Float scratch size:
``tk_smoothed_max_scratch``. ``split_state``: NULL, or a state shared with a thread in tk_smoothed_max_help (below),
which then takes chunks of each pass over the bank. */
/* the first of the largest, as numpy's argmax */
static inline __attribute__((always_inline)) int64_t argmax(const float *v, int64_t n) {
    int64_t at = 0;
    for (int64_t c = 1; c < n; c++)
        if (v[c] > v[at]) at = c;
    return at;
}

static inline int64_t reflect(int64_t i, int64_t n) {
    while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
    return i;
}

static inline __attribute__((always_inline)) void smooth(const float *d, int64_t tiles, int64_t h, int64_t w, const float *kernel, int64_t radius,
                   float *tmp, float *out) {
    for (int64_t t = 0; t < tiles; t++) {
        const float *src = d + t * h * w;
        float *rows = tmp + t * h * w, *dst = out + t * h * w;
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                float acc = 0.0f;
                for (int64_t k = -radius; k <= radius; k++) acc += kernel[k + radius] * src[i * w + reflect(j + k, w)];
                rows[i * w + j] = acc;
            }
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                float acc = 0.0f;
                for (int64_t k = -radius; k <= radius; k++) acc += kernel[k + radius] * rows[reflect(i + k, h) * w + j];
                dst[i * w + j] = acc;
            }
    }
}

/* A smoothed-max loop split over two threads (bounded.py, ``smoothed_max`` with a helper). The calling thread runs
the loop (tk_smoothed_max with ``split_state``); a second thread calls tk_smoothed_max_help with the same state and,
whenever the loop starts a pass over the bank, takes chunks of it. Chunks are claimed one at a time by either thread,
so a helper that comes late (it first draws the anomaly map) or not at all only leaves more chunks to the loop's
thread: the loop never waits for the helper except to finish a chunk it has claimed. Each chunk starts from the
nearest distances found so far and lowers them with an atomic minimum, so the pass finds the same nearest rows,
and the same distances, as one thread does: the minimum over the rows the bound cannot rule out.

The state is the caller's memory, ``tk_split_size()`` bytes, zeroed before either thread starts. */
#define TK_CHUNK_BLOCKS 64            /* 1024 bank rows: about 30 chunks a pass over a 26k-row bank */
#define TK_FINISHED UINT64_C(0xffffffff)
#define TK_HELP_SPINS 20000           /* a helper spins this many rounds (tens of microseconds), then yields */
#define TK_HELP_IDLE_NS 1000000000LL  /* and gives up after a second without a pass (a loop that never started) */

typedef struct {
    _Atomic uint64_t claim;           /* the pass's generation << 32 | its next unclaimed chunk */
    _Atomic int64_t done;             /* chunks of this generation finished */
    _Atomic int64_t chunks;           /* chunks in this generation's pass */
    _Atomic int64_t helped;           /* full rows the helper computed, all passes */
    /* the pass, written by the loop's thread before it publishes the generation, unchanged until every chunk is done */
    const float *qa, *queries, *q_sq, *blocked, *bank;
    int64_t n, kdim, dim, entries;
    float largest_sq, rtol;
    _Atomic uint32_t best[TK_MAX_WINDOW]; /* each query's nearest squared distance so far, as float bits (>= 0) */
} tk_split;

TK_EXPORT int64_t tk_split_size(void) { return (int64_t)sizeof(tk_split); }

/* Ends the helper's wait where the loop's thread will not run (it failed before its call): the helper returns. */
TK_EXPORT void tk_split_finish(void *split_state) {
    atomic_store_explicit(&((tk_split *)split_state)->claim, TK_FINISHED << 32, memory_order_release);
}

/* Non-negative floats order as their bits do. */
static inline uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* The next chunk of generation ``gen``, or -1 where that pass has none left (or a newer one began). */
static inline int64_t claim_chunk(tk_split *s, uint64_t gen) {
    uint64_t v = atomic_load_explicit(&s->claim, memory_order_acquire);
    while ((v >> 32) == gen &&
           (int64_t)(v & 0xffffffffu) < atomic_load_explicit(&s->chunks, memory_order_relaxed))
        if (atomic_compare_exchange_weak_explicit(&s->claim, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
            return (int64_t)(v & 0xffffffffu);
    return -1;
}

/* One chunk of the pass: its rows' bounds and survivors, from the nearest distances found so far; ``best`` and
   ``scratch``: the thread's own (n and n · (kdim + 1) floats). Returns the full rows computed. */
static inline __attribute__((always_inline)) int64_t run_chunk(tk_split *s, int64_t c, float *best, float *scratch) {
    int64_t blocks = (s->entries + TK_BLOCK - 1) / TK_BLOCK, b0 = c * TK_CHUNK_BLOCKS;
    int64_t b1 = b0 + TK_CHUNK_BLOCKS < blocks ? b0 + TK_CHUNK_BLOCKS : blocks;
    int64_t r0 = b0 * TK_BLOCK, r1 = b1 * TK_BLOCK < s->entries ? b1 * TK_BLOCK : s->entries;
    for (int64_t u = 0; u < s->n; u++) best[u] = bits_float(atomic_load_explicit(&s->best[u], memory_order_relaxed));
    int64_t checked = bounded_nearest(s->qa, s->n, s->kdim, s->blocked + b0 * s->kdim * TK_BLOCK, r1 - r0, s->queries,
                                      s->dim, s->bank + r0 * s->dim, s->q_sq, s->largest_sq, s->rtol, best, scratch);
    for (int64_t u = 0; u < s->n; u++) { /* atomic minimum */
        uint32_t mine = float_bits(best[u]), held = atomic_load_explicit(&s->best[u], memory_order_relaxed);
        while (mine < held && !atomic_compare_exchange_weak_explicit(&s->best[u], &held, mine, memory_order_relaxed,
                                                                    memory_order_relaxed)) {
        }
    }
    return checked;
}

/* The loop's side of a pass: publish it, take chunks until none are left, wait for the helper's, read the result. */
static inline __attribute__((always_inline)) int64_t
shared_pass(tk_split *s, const float *qa, int64_t n, int64_t kdim, const float *blocked, int64_t entries,
            const float *queries, int64_t dim, const float *bank, const float *q_sq, float largest_sq, float rtol,
            float *best, float *own_best, float *scratch) {
    int64_t blocks = (entries + TK_BLOCK - 1) / TK_BLOCK, chunks = (blocks + TK_CHUNK_BLOCKS - 1) / TK_CHUNK_BLOCKS;
    s->qa = qa, s->queries = queries, s->q_sq = q_sq, s->blocked = blocked, s->bank = bank;
    s->n = n, s->kdim = kdim, s->dim = dim, s->entries = entries, s->largest_sq = largest_sq, s->rtol = rtol;
    for (int64_t u = 0; u < n; u++) atomic_store_explicit(&s->best[u], float_bits(best[u]), memory_order_relaxed);
    atomic_store_explicit(&s->done, 0, memory_order_relaxed);
    atomic_store_explicit(&s->chunks, chunks, memory_order_relaxed);
    uint64_t gen = (atomic_load_explicit(&s->claim, memory_order_relaxed) >> 32) + 1;
    atomic_store_explicit(&s->claim, gen << 32, memory_order_release);
    int64_t checked = 0;
    for (int64_t c; (c = claim_chunk(s, gen)) >= 0;) {
        checked += run_chunk(s, c, own_best, scratch);
        atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
    }
    while (atomic_load_explicit(&s->done, memory_order_acquire) < chunks) spin_pause();
    for (int64_t u = 0; u < n; u++) best[u] = bits_float(atomic_load_explicit(&s->best[u], memory_order_relaxed));
    return checked;
}

static inline int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* A search pool worker's wait between jobs (split.py): spin on ``word`` until it differs from ``seen`` or
   ``spin_ns`` have passed, giving the CPU to any other thread that wants it every few rounds. A worker that waits
   this way keeps its CPU awake: it starts the next frame's part within microseconds of the caller's call that
   changes the word, where a blocked thread takes a wake-up (a tenth of a millisecond and more on a virtual
   machine, whose idle CPU the host may also park). Returns 1 when the word changed, 0 after ``spin_ns``. */
TK_EXPORT int64_t tk_idle_wait(const _Atomic int64_t *word, int64_t seen, int64_t spin_ns) {
    int64_t start = now_ns();
    for (int64_t rounds = 1; atomic_load_explicit(word, memory_order_acquire) == seen; rounds++) {
        if (rounds % 64) {
            spin_pause();
            continue;
        }
        sched_yield();
        if (now_ns() - start > spin_ns) return 0;
    }
    return 1;
}

/* The helper's side: take chunks of each pass the loop publishes, until it finishes. ``scratch``: window · (kdim + 2)
   floats. Returns the full rows it computed, or -1 where no pass came within a second (a loop that never started). */
TK_CLONES TK_EXPORT int64_t tk_smoothed_max_help(void *split_state, float *scratch) {
    TK_CLEAN_EXIT;
    tk_split *s = split_state;
    int64_t checked = 0, spins = 0, idle_since = now_ns();
    for (;;) {
        uint64_t gen = atomic_load_explicit(&s->claim, memory_order_acquire) >> 32;
        if (gen == TK_FINISHED) return checked;
        int64_t c = claim_chunk(s, gen);
        if (c >= 0) {
            int64_t rows = run_chunk(s, c, scratch, scratch + s->n);
            checked += rows;
            atomic_fetch_add_explicit(&s->helped, rows, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
            spins = 0;
            idle_since = now_ns();
            continue;
        }
        if (++spins < TK_HELP_SPINS) {
            spin_pause();
        } else {
            sched_yield();
            if (now_ns() - idle_since > TK_HELP_IDLE_NS) return -1;
        }
    }
}

TK_EXPORT int64_t tk_smoothed_max_scratch(int64_t patches, int64_t dim, int64_t p, int64_t radius) {
    int64_t window = (2 * radius + 1) * (2 * radius + 1), kdim = p + 2;
    /* d, tmp, bound; per window: queries, qa, q_sq, best, the bounded pass's scratch; one centred row; per window:
       a split pass's own nearest distances */
    return 3 * patches + window * (dim + kdim + 2 + kdim + 1) + dim + window;
}

/* The loop itself (tk_smoothed_max), built into each clone. */
static inline __attribute__((always_inline)) int64_t
smoothed_max(const float *emb, int64_t tiles, int64_t h, int64_t w, int64_t dim, const float *upper,
             const float *kernel, int64_t radius, float refine_rtol, const float *center, const float *directions,
             int64_t p, const float *blocked, int64_t entries, const float *bank, float largest_sq, float bound_rtol,
             float *scratch, uint8_t *exact, double *score, int64_t *counts, tk_split *split) {
    int64_t patches = tiles * h * w, window = (2 * radius + 1) * (2 * radius + 1), kdim = p + 2;
    float *d = scratch, *tmp = d + patches, *bound = tmp + patches;
    float *queries = bound + patches, *qa = queries + window * dim, *q_sq = qa + window * kdim;
    float *best = q_sq + window, *pass_scratch = best + window, *centred = pass_scratch + window * (kdim + 1);
    float *own_best = centred + dim; /* a split pass: this thread's copy of the nearest distances */
    int64_t todo[TK_MAX_WINDOW];
    if (window > TK_MAX_WINDOW || radius < 0) return TK_BAD_KERNEL; /* todo holds one window */
    for (int64_t i = 0; i < patches; i++) {
        d[i] = upper[i];
        exact[i] = 0;
    }
    counts[0] = counts[1] = 0;
    float top = -INFINITY;
    smooth(d, tiles, h, w, kernel, radius, tmp, bound);
    int64_t cell = argmax(bound, patches);
    while (bound[cell] * (1.0f + refine_rtol) >= top) {
        int64_t t = cell / (h * w), ci = cell / w % h, cj = cell % w, n = 0;
        for (int64_t i = ci - radius < 0 ? 0 : ci - radius; i <= ci + radius && i < h; i++)
            for (int64_t j = cj - radius < 0 ? 0 : cj - radius; j <= cj + radius && j < w; j++) {
                int64_t at = (t * h + i) * w + j;
                if (!exact[at]) todo[n++] = at;
            }
        for (int64_t u = 0; u < n; u++) { /* lift each query: [(x − c)·V, |the rest|], then (−2·lift, 1) */
            const float *x = emb + todo[u] * dim;
            float *lifted = qa + u * kdim, all = 0.0f, held = 0.0f;
            for (int64_t c = 0; c < dim; c++) {
                centred[c] = x[c] - center[c];
                all += centred[c] * centred[c];
                queries[u * dim + c] = x[c];
            }
            for (int64_t k = 0; k < p; k++) {
                float v = 0.0f;
                for (int64_t c = 0; c < dim; c++) v += centred[c] * directions[c * p + k];
                lifted[k] = v;
                held += v * v;
            }
            float rest = all - held;
            lifted[p] = sqrtf(rest > 0.0f ? rest : 0.0f);
            q_sq[u] = held + lifted[p] * lifted[p];
            for (int64_t k = 0; k <= p; k++) lifted[k] *= -2.0f;
            lifted[p + 1] = 1.0f;
            best[u] = d[todo[u]] * d[todo[u]];
        }
        if (split != NULL)
            counts[1] += shared_pass(split, qa, n, kdim, blocked, entries, queries, dim, bank, q_sq, largest_sq,
                                     bound_rtol, best, own_best, pass_scratch);
        else
            counts[1] += bounded_nearest(qa, n, kdim, blocked, entries, queries, dim, bank, q_sq, largest_sq,
                                         bound_rtol, best, pass_scratch);
        for (int64_t u = 0; u < n; u++) {
            d[todo[u]] = sqrtf(best[u]);
            exact[todo[u]] = 1;
        }
        counts[0] += n;
        smooth(d, tiles, h, w, kernel, radius, tmp, bound);
        /* a cell is settled when every patch under its kernel is exact (its smoothed value is then exact) */
        int pending = 0;
        float settled_top = -INFINITY;
        for (int64_t c = 0; c < patches; c++) {
            int64_t tt = c / (h * w), i0 = c / w % h, j0 = c % w, open = 0;
            for (int64_t i = i0 - radius < 0 ? 0 : i0 - radius; i <= i0 + radius && i < h && !open; i++)
                for (int64_t j = j0 - radius < 0 ? 0 : j0 - radius; j <= j0 + radius && j < w; j++)
                    if (!exact[(tt * h + i) * w + j]) {
                        open = 1;
                        break;
                    }
            if (open) {
                pending = 1;
            } else {
                if (bound[c] > settled_top) settled_top = bound[c];
                bound[c] = -INFINITY;
            }
        }
        if (settled_top > top) top = settled_top;
        if (!pending) break;
        cell = argmax(bound, patches);
    }
    *score = top;
    return 0;
}

TK_CLONES TK_EXPORT int64_t tk_smoothed_max(const float *emb, int64_t tiles, int64_t h, int64_t w, int64_t dim,
                                            const float *upper, const float *kernel, int64_t radius,
                                            float refine_rtol, const float *center, const float *directions,
                                            int64_t p, const float *blocked, int64_t entries, const float *bank,
                                            float largest_sq, float bound_rtol, float *scratch, uint8_t *exact,
                                            double *score, int64_t *counts, void *split_state) {
    TK_CLEAN_EXIT;
    tk_split *split = split_state;
    int64_t code = smoothed_max(emb, tiles, h, w, dim, upper, kernel, radius, refine_rtol, center, directions, p,
                                blocked, entries, bank, largest_sq, bound_rtol, scratch, exact, score, counts, split);
    if (split != NULL) {
        counts[1] += atomic_load_explicit(&split->helped, memory_order_relaxed);
        tk_split_finish(split); /* the helper returns */
    }
    return code;
}

/* The projected search's first stage in one call per thread (projected.py, ``_first_stage``): project each row, walk
the HNSW graph for its candidates, rank them and lend the best, then, once every row is ranked, answer each row from
its own candidates and its neighbours' lent rows. The threads of a split frame claim blocks of rows one at a time,
so a thread that the system starts late or slows down leaves more blocks to the others, and they meet between the
two steps by spinning on a counter, holding no GIL: no Python between a frame's blocks, no wake-up at the meeting.

The walk is hnswlib's own search (hnswlib 0.8's searchKnn on an L2 index without deleted entries: a greedy descent
through the upper layers, then the base layer's best-first search with ``ef`` candidates), read from the index
file's own arrays (hnsw_graph.py), with hnswlib's distance as its portable x86-64 build computes it (four SSE lanes
of squared differences, then their sum left to right) and its heaps as libstdc++'s priority_queue orders them, so
that it finds hnswlib's rows in hnswlib's order (a test holds it to hnswlib). Built on x86-64 only: elsewhere
hnswlib's build computes its distances another way, and the projected search walks with hnswlib itself. */
#define TK_SHORT_WALK (-5)            /* the graph gave fewer than k rows (hnswlib refuses such a query too) */
#define TK_STAGE_TIMEOUT (-6)         /* another thread kept a claimed block longer than the caller allows */
#define TK_STAGE_ROWS 16              /* rows a thread claims at a time: 49 blocks in a 28 × 28 frame */

typedef struct {
    const uint8_t *level0;            /* [count][per_element]: list size (u32, low 16 bits), max_m0 links, vector, label */
    const uint8_t *upper;             /* each upper-layer element's lists, levels × per_upper bytes */
    const int64_t *upper_at;          /* [count] byte offset of the element's lists in ``upper`` (-1: none) */
    int64_t count, per_element, data_at, label_at, per_upper, dim, max_level, entry;
} tk_graph;

typedef struct {
    float d;
    uint32_t id;
} tk_pair;

#if defined(__x86_64__)
#include <immintrin.h>
#define TK_WALKS 1
/* hnswlib's distances round each product and each sum apart: no fused multiply-add here, whatever -march says */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

/* hnswlib's std::priority_queue with its CompareByFirst (a max-heap on d alone): libstdc++'s push_heap and
   pop_heap step for step, so that ties in d leave the same element on top as in hnswlib. */
static inline void heap_push(tk_pair *h, int64_t *n, float d, uint32_t id) {
    int64_t hole = (*n)++, parent = (hole - 1) / 2;
    while (hole > 0 && h[parent].d < d) {
        h[hole] = h[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    h[hole].d = d, h[hole].id = id;
}

static inline void heap_pop(tk_pair *h, int64_t *n) {
    int64_t len = *n - 1;
    *n = len;
    if (len <= 0) return;
    tk_pair value = h[len];
    h[len] = h[0];
    int64_t hole = 0, child = 0;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (h[child].d < h[child - 1].d) child--;
        h[hole] = h[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        h[hole] = h[child - 1];
        hole = child - 1;
    }
    int64_t parent = (hole - 1) / 2;
    while (hole > 0 && h[parent].d < value.d) {
        h[hole] = h[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    h[hole] = value;
}

/* hnswlib's L2SqrSIMD4Ext / L2SqrSIMD16ExtSSE (dim a multiple of 4): a product and a sum per lane, rounded apart,
   then the four lanes left to right. */
static inline float hnsw_l2(const float *a, const float *b, int64_t dim) {
    __m128 sum = _mm_setzero_ps();
    for (int64_t i = 0; i < dim; i += 4) {
        __m128 diff = _mm_sub_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i));
        sum = _mm_add_ps(sum, _mm_mul_ps(diff, diff));
    }
    float lanes[4];
    _mm_storeu_ps(lanes, sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

static inline const float *graph_vector(const tk_graph *g, uint32_t id) {
    return (const float *)(g->level0 + (int64_t)id * g->per_element + g->data_at);
}

static inline uint64_t graph_label(const tk_graph *g, uint32_t id) {
    uint64_t label;
    memcpy(&label, g->level0 + (int64_t)id * g->per_element + g->label_at, sizeof label);
    return label;
}

/* One query's ``k`` nearest rows by hnswlib's searchKnn, written to ``out`` as hnswlib's knn_query writes them
   (nearest first; equal distances by label). ``visited``: [count] tags, ``tag`` the last one used; ``top``: ef + 1
   pairs, ``cand``: count + 1. Indices come from hnsw_graph.py, which checked every one against ``count``. */
static int64_t walk_one(const tk_graph *g, const float *q, int64_t ef, int64_t k, uint32_t *visited, uint32_t *tag,
                        tk_pair *top, tk_pair *cand, uint64_t *out) {
    uint32_t t = ++*tag;
    if (t == 0) { /* the tags went round: clear them */
        memset(visited, 0, (size_t)g->count * sizeof *visited);
        t = *tag = 1;
    }
    uint32_t cur = (uint32_t)g->entry;
    float curdist = hnsw_l2(q, graph_vector(g, cur), g->dim);
    for (int64_t level = g->max_level; level > 0; level--) {
        for (int changed = 1; changed;) {
            changed = 0;
            const uint32_t *list = (const uint32_t *)(g->upper + g->upper_at[cur] + (level - 1) * g->per_upper);
            uint32_t size = list[0] & 0xffffu;
            for (uint32_t i = 1; i <= size; i++) {
                float d = hnsw_l2(q, graph_vector(g, list[i]), g->dim);
                if (d < curdist) {
                    curdist = d;
                    cur = list[i];
                    changed = 1;
                }
            }
        }
    }
    int64_t nt = 0, nc = 0;
    float lower = hnsw_l2(q, graph_vector(g, cur), g->dim);
    heap_push(top, &nt, lower, cur);
    heap_push(cand, &nc, -lower, cur);
    visited[cur] = t;
    while (nc > 0) {
        tk_pair next = cand[0];
        if (-next.d > lower) break;
        heap_pop(cand, &nc);
        const uint32_t *list = (const uint32_t *)(g->level0 + (int64_t)next.id * g->per_element);
        uint32_t size = list[0] & 0xffffu;
        for (uint32_t j = 1; j <= size; j++) {
            uint32_t id = list[j];
            if (visited[id] == t) continue;
            visited[id] = t;
            float d = hnsw_l2(q, graph_vector(g, id), g->dim);
            if (nt < ef || lower > d) {
                heap_push(cand, &nc, -d, id);
                heap_push(top, &nt, d, id);
                if (nt > ef) heap_pop(top, &nt);
                if (nt > 0) lower = top[0].d;
            }
        }
    }
    while (nt > k) heap_pop(top, &nt);
    if (nt < k) return TK_SHORT_WALK;
    for (int64_t i = 0; i < k; i++) { /* nearest first, equal distances by label: hnswlib's result queue */
        float d = top[i].d;
        uint64_t label = graph_label(g, top[i].id);
        int64_t at = i;
        while (at > 0 && (top[at - 1].d > d || (top[at - 1].d == d && (uint64_t)top[at - 1].id > label))) {
            top[at] = top[at - 1];
            at--;
        }
        top[at].d = d, top[at].id = (uint32_t)label; /* from here on ``id`` holds the label (< count: checked) */
    }
    for (int64_t i = 0; i < k; i++) out[i] = top[i].id;
    return 0;
}
#pragma GCC pop_options
#else
#define TK_WALKS 0
#endif

TK_EXPORT int64_t tk_walks(void) { return TK_WALKS; }

/* ``queries`` [rows, g->dim] (already projected): each one's ``k`` nearest rows into ``labels`` [rows, k], as
   hnswlib's knn_query gives them; the scratch as walk_one's. */
TK_EXPORT int64_t tk_graph_walk(const tk_graph *g, const float *queries, int64_t rows, int64_t ef, int64_t k,
                                uint32_t *visited, uint32_t *tag, tk_pair *heaps, uint64_t *labels) {
#if TK_WALKS
    if (k < 1 || ef < k || k > 64) return TK_BAD_LEND;
    for (int64_t r = 0; r < rows; r++) {
        int64_t code = walk_one(g, queries + r * g->dim, ef, k, visited, tag, heaps, heaps + ef + 1, labels + r * k);
        if (code < 0) return code;
    }
    return 0;
#else
    (void)g, (void)queries, (void)rows, (void)ef, (void)k, (void)visited, (void)tag, (void)heaps, (void)labels;
    return TK_SHORT_WALK;
#endif
}

/* x [rows, dim] → x·P + b into ``out`` [rows, d] (``projection`` [dim + 1, d]: P, then b). Each value is summed in
   the order of x's columns, one multiply-add at a time, however the rows are blocked, so a row's projection never
   depends on the block it came in. Four rows × 16 columns are kept in registers over the whole sum. */
#define TK_PROJECT_ROWS 4
#define TK_PROJECT_COLS 16
TK_CLONES static void project_rows(const float *x, int64_t rows, int64_t dim, const float *projection, int64_t d,
                                   float *out) {
    TK_CLEAN_EXIT;
    const float *bias = projection + dim * d;
    int64_t r = 0;
    if (d % TK_PROJECT_COLS == 0)
        for (; r + TK_PROJECT_ROWS <= rows; r += TK_PROJECT_ROWS)
            for (int64_t j0 = 0; j0 < d; j0 += TK_PROJECT_COLS) {
                float acc[TK_PROJECT_ROWS][TK_PROJECT_COLS] = {{0.0f}};
                for (int64_t c = 0; c < dim; c++) {
                    const float *pc = projection + c * d + j0;
                    for (int64_t u = 0; u < TK_PROJECT_ROWS; u++) {
                        const float v = x[(r + u) * dim + c];
#pragma omp simd
                        for (int64_t j = 0; j < TK_PROJECT_COLS; j++) acc[u][j] += v * pc[j];
                    }
                }
                for (int64_t u = 0; u < TK_PROJECT_ROWS; u++)
                    for (int64_t j = 0; j < TK_PROJECT_COLS; j++) out[(r + u) * d + j0 + j] = acc[u][j] + bias[j0 + j];
            }
    for (; r < rows; r++) { /* the rows left over, or a width the blocks do not fit: the same sums one row at a time */
        float *o = out + r * d;
        for (int64_t j = 0; j < d; j++) o[j] = 0.0f;
        for (int64_t c = 0; c < dim; c++) {
            const float v = x[r * dim + c], *pc = projection + c * d;
#pragma omp simd
            for (int64_t j = 0; j < d; j++) o[j] += v * pc[j];
        }
        for (int64_t j = 0; j < d; j++) o[j] += bias[j];
    }
}

typedef struct {
    _Atomic int64_t walk;             /* the next block to walk and rank */
    _Atomic int64_t ranked;           /* rows ranked (their lent rows are in the table) */
    _Atomic int64_t answer;           /* the next block to answer */
    _Atomic int64_t answered;         /* rows answered */
    _Atomic int64_t failed;           /* the first error code of any thread, 0 while none */
} tk_stage;

TK_EXPORT int64_t tk_stage_size(void) { return (int64_t)sizeof(tk_stage); }
TK_EXPORT int64_t tk_stage_rows(void) { return TK_STAGE_ROWS; }

/* Wait until ``*counter`` reaches ``target`` or a thread fails; TK_STAGE_TIMEOUT after ``timeout_ns``. */
static int64_t stage_meet(tk_stage *s, _Atomic int64_t *counter, int64_t target, int64_t timeout_ns) {
    int64_t spins = 0, since = 0;
    while (atomic_load_explicit(counter, memory_order_acquire) < target) {
        int64_t failed = atomic_load_explicit(&s->failed, memory_order_relaxed);
        if (failed) return failed;
        if (++spins < TK_HELP_SPINS) {
            spin_pause();
            continue;
        }
        sched_yield(); /* a thread that holds a block but not a core: let it have this one */
        if (since == 0) since = now_ns();
        if (now_ns() - since > timeout_ns) {
            int64_t none = 0;
            atomic_compare_exchange_strong(&s->failed, &none, TK_STAGE_TIMEOUT);
            return TK_STAGE_TIMEOUT;
        }
    }
    return atomic_load_explicit(&s->failed, memory_order_relaxed);
}

static int64_t stage_fail(tk_stage *s, int64_t code) {
    int64_t none = 0;
    atomic_compare_exchange_strong(&s->failed, &none, code);
    return code;
}

/* One thread's part of a frame's first stage; every thread of the frame calls it with the same ``stage`` (zeroed)
   and arrays. q [rows, dim]: the frame's patches; labels [rows, k], rank [rows, k], lent [rows, lend], out [rows]:
   the frame's, each row written by the thread that claims its block; neighbours [rows, 4]: row numbers into lent.
   visited, tag, heaps: this thread's, as tk_graph_walk's; projected: this thread's, TK_STAGE_ROWS × g->dim floats;
   walked: this thread's, one int64 per block; wake: a search pool's word its spinning workers watch (tk_idle_wait),
   changed here, once the GIL is released, so that a worker that starts finds it free (NULL: none).
   Returns 0 once every row is answered, or the first error code of any thread. */
TK_EXPORT int64_t tk_first_stage(void *stage_state, const tk_graph *g, const float *q, int64_t rows, int64_t dim,
                                 const float *projection, int64_t ef, int64_t k, const float *bank, const float *norms,
                                 int64_t entries, int64_t lend, const int64_t *neighbours, int64_t *lent,
                                 uint64_t *labels, float *rank, float *out, uint32_t *visited, uint32_t *tag,
                                 tk_pair *heaps, float *projected, int64_t *walked, _Atomic int64_t *wake,
                                 int64_t timeout_ns) {
    tk_stage *s = stage_state;
    if (wake != NULL) atomic_fetch_add_explicit(wake, 1, memory_order_release); /* a worker waiting on the CPU starts */
    int64_t blocks = (rows + TK_STAGE_ROWS - 1) / TK_STAGE_ROWS, code;
    if (!TK_WALKS) return stage_fail(s, TK_SHORT_WALK);
    if (k < 1 || ef < k || k > 64 || lend < 0 || lend > k) return stage_fail(s, TK_BAD_LEND);
    /* walk every block this thread can claim first, then rank them: ranking reads scattered bank rows, which
       would push the graph out of the cache between walks */
    int64_t mine = 0;
    for (int64_t b; (b = atomic_fetch_add_explicit(&s->walk, 1, memory_order_relaxed)) < blocks;) {
        if (atomic_load_explicit(&s->failed, memory_order_relaxed)) break;
        int64_t r0 = b * TK_STAGE_ROWS, n = rows - r0 < TK_STAGE_ROWS ? rows - r0 : TK_STAGE_ROWS;
        project_rows(q + r0 * dim, n, dim, projection, g->dim, projected);
        if ((code = tk_graph_walk(g, projected, n, ef, k, visited, tag, heaps, labels + r0 * k)) < 0)
            return stage_fail(s, code);
        walked[mine++] = b;
    }
    for (int64_t i = 0; i < mine; i++) {
        int64_t r0 = walked[i] * TK_STAGE_ROWS, n = rows - r0 < TK_STAGE_ROWS ? rows - r0 : TK_STAGE_ROWS;
        code = tk_rank_and_lend(q + r0 * dim, n, dim, labels + r0 * k, k, bank, norms, entries, lend, rank + r0 * k,
                                lend ? lent + r0 * lend : NULL);
        if (code < 0) return stage_fail(s, code);
        atomic_fetch_add_explicit(&s->ranked, n, memory_order_release);
    }
    if ((code = stage_meet(s, &s->ranked, rows, timeout_ns)) != 0) return code; /* every lent row is in */
    for (int64_t b; (b = atomic_fetch_add_explicit(&s->answer, 1, memory_order_relaxed)) < blocks;) {
        int64_t r0 = b * TK_STAGE_ROWS, n = rows - r0 < TK_STAGE_ROWS ? rows - r0 : TK_STAGE_ROWS;
        code = tk_answer(q + r0 * dim, n, dim, labels + r0 * k, k, rank + r0 * k, bank, norms, entries,
                         lend ? neighbours + r0 * 4 : NULL, lend ? lent : NULL, rows, lend, out + r0);
        if (code < 0) return stage_fail(s, code);
        atomic_fetch_add_explicit(&s->answered, n, memory_order_release);
    }
    return stage_meet(s, &s->answered, rows, timeout_ns); /* every distance is in */
}

/* A module to import, so that setuptools builds this file like any extension and importlib finds it; its
   functions are reached through ctypes, not through the module. */
static struct PyModuleDef kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                            "The searches' inner loops; see tocoad_edge/runtime/search/kernels.py.",
                                            -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
