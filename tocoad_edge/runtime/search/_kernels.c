/* The searches' inner loops in C, called through ctypes (kernels.py), which releases the GIL for each call.

Two loops that numpy runs as dozens of small calls per frame: each call retakes the GIL, so two threads that split
a frame hand it back and forth, and each re-rank gathers copies of the bank rows before it can read them. Here each
is one call that reads the bank rows where they lie. The numpy code in projected.py and bounded.py stays the
reference (and the path where this file could not be compiled); the tests hold each loop to it.

Every index read from the caller's arrays is checked before it is used: a bad label is an error code, never a read
outside the bank. No allocation, no global state: any number of threads may call at once. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>

/* GCC on x86-64 glibc builds each loop for AVX-512, AVX2 and the baseline and picks one at load time, so one build
   runs fast on any x86-64 CPU; elsewhere (aarch64: NEON is the baseline) the compiler's vectorised baseline. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
#define TK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TK_CLONES
#endif
#define TK_EXPORT __attribute__((visibility("default")))

/* Error codes (kernels.py turns them into expected/got errors). */
#define TK_BAD_LABEL (-1)
#define TK_BAD_NEIGHBOUR (-2)
#define TK_BAD_LEND (-3)

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

/* The projected search's re-rank, with lending (projected.py, ``_lend_rows``; ``lend`` 0: ``_rerank``).

q [walked, dim]: the queries walked; labels [walked, k]: their candidate bank rows. Each walked row's candidates are
ranked by |b|² − 2 q·b (``rank`` [walked, k], scratch) and its ``lend`` best kept (``lent`` [walked, lend],
scratch). Then for the rows own_start .. own_start + own_count: the best-ranked of its own candidates and of the
rows lent by its four neighbours (``neighbours`` [own_count, 4], row numbers within the walked rows), and ``out``
[own_count] the full distance to it by differences (a true distance to that row, never below it by cancellation).
A tie keeps the first: own candidates in order, then the neighbours' in order, as numpy's argmin does. */
TK_CLONES TK_EXPORT int64_t tk_rerank_lending(const float *q, int64_t walked, int64_t dim, const uint64_t *labels,
                                              int64_t k, const float *bank, const float *norms, int64_t entries,
                                              const int64_t *neighbours, int64_t own_start, int64_t own_count,
                                              int64_t lend, float *rank, int64_t *lent, float *out) {
    if (lend < 0 || lend > k || k > 64) return TK_BAD_LEND;
    for (int64_t i = 0; i < walked * k; i++)
        if (labels[i] >= (uint64_t)entries) return TK_BAD_LABEL;
    if (lend > 0)
        for (int64_t i = 0; i < own_count * 4; i++)
            if (neighbours[i] < 0 || neighbours[i] >= walked) return TK_BAD_NEIGHBOUR;
    /* with lending every walked row lends; without, only the own rows need ranking */
    int64_t first = lend > 0 ? 0 : own_start, last = lend > 0 ? walked : own_start + own_count;
    for (int64_t i = first; i < last; i++) {
        const float *qi = q + i * dim;
        float *ri = rank + i * k;
        for (int64_t j = 0; j < k; j++) {
            int64_t row = (int64_t)labels[i * k + j];
            ri[j] = norms[row] - 2.0f * dot(qi, bank + row * dim, dim);
        }
        uint64_t taken = 0; /* the lend best by selection: lend <= k <= 64 */
        for (int64_t t = 0; t < lend; t++) {
            int64_t arg = -1;
            for (int64_t j = 0; j < k; j++)
                if (!(taken >> j & 1u) && (arg < 0 || ri[j] < ri[arg])) arg = j;
            taken |= (uint64_t)1 << arg;
            lent[i * lend + t] = (int64_t)labels[i * k + arg];
        }
    }
    for (int64_t r = 0; r < own_count; r++) {
        int64_t i = own_start + r;
        const float *qi = q + i * dim;
        int64_t winner = (int64_t)labels[i * k];
        float best = rank[i * k];
        for (int64_t j = 1; j < k; j++)
            if (rank[i * k + j] < best) {
                best = rank[i * k + j];
                winner = (int64_t)labels[i * k + j];
            }
        for (int64_t side = 0; side < (lend > 0 ? 4 : 0); side++) {
            const int64_t *from = lent + neighbours[r * 4 + side] * lend;
            for (int64_t t = 0; t < lend; t++) {
                float v = norms[from[t]] - 2.0f * dot(qi, bank + from[t] * dim, dim);
                if (v < best) {
                    best = v;
                    winner = from[t];
                }
            }
        }
        out[r] = sqrtf(squared_distance(qi, bank + winner * dim, dim));
    }
    return 0;
}

/* The bounded re-check's survivors in one bank share (bounded.py, ``_nearest_in_rows``).

bound [n, rows]: each query's lower bound of its squared distance to each row, less |q~|² (q_sq); best [n]: squared
true distances to some rows, lowered in place to the nearest row of the share that is nearer. A row is a survivor
while its bound is within the rounding margin of the best so far, and the threshold tightens as the best falls, so
later rows need to beat the nearest found so far. Returns how many full distances it computed. */
TK_CLONES TK_EXPORT int64_t tk_bounded_survivors(const float *bound, int64_t n, int64_t rows, const float *q,
                                                 int64_t dim, const float *bank_rows, const float *q_sq,
                                                 float largest_sq, float rtol, float *best) {
    int64_t checked = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *bi = bound + i * rows;
        const float *qi = q + i * dim;
        float nearest = best[i];
        float threshold = nearest + rtol * (q_sq[i] + largest_sq + nearest) - q_sq[i];
        for (int64_t j = 0; j < rows; j++) {
            if (bi[j] <= threshold) {
                float d = squared_distance(bank_rows + j * dim, qi, dim);
                checked++;
                if (d < nearest) {
                    nearest = d;
                    threshold = d + rtol * (q_sq[i] + largest_sq + d) - q_sq[i];
                }
            }
        }
        best[i] = nearest;
    }
    return checked;
}

/* A module to import, so that setuptools builds this file like any extension and importlib finds it; its
   functions are reached through ctypes, not through the module. */
static struct PyModuleDef kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                            "The searches' inner loops; see tocoad_edge/runtime/search/kernels.py.",
                                            -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
