/*
 * tocoad-edge native runtime: C ABI.
 *
 * Loads a bundle written by tocoad-export (manifest.json, backbone.onnx, coreset.npy, index.hnsw,
 * optional TensorRT engines), checks the sha256 of every file before any loader reads it, and scores
 * frames exactly like the Python runtime (tocoad_edge.runtime.Detector).
 *
 * Conventions
 *  - Every function that can fail returns a tocoad_status; TOCOAD_OK (0) is success.
 *  - On failure, tocoad_last_error() returns a message for the calling thread that says what was
 *    expected, what was got and how to fix it. It stays valid until the next failing call on that thread.
 *  - Nothing is written to an out-parameter unless the call succeeds.
 *  - A detector handle may be used from several threads at once; inference on one handle is serialised
 *    internally. Results are independent objects owned by the caller (tocoad_result_free).
 *  - No C++ exception ever crosses this boundary.
 */
#ifndef TOCOAD_EDGE_H
#define TOCOAD_EDGE_H

#include <stddef.h>
#include <stdint.h>

#include "tocoad_edge/tocoad_edge_export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TOCOAD_EDGE_ABI_VERSION 1

typedef enum tocoad_status {
    TOCOAD_OK = 0,
    TOCOAD_ERR_INVALID_ARGUMENT = 1,     /* a NULL pointer, an unknown enum value, a bad option */
    TOCOAD_ERR_BUNDLE = 2,               /* bundle missing, incomplete, corrupt, tampered or other schema */
    TOCOAD_ERR_ENGINE_INCOMPATIBLE = 3,  /* TensorRT engine built for another TensorRT, GPU or model */
    TOCOAD_ERR_INPUT = 4,                /* the image buffer has a wrong size, stride or format */
    TOCOAD_ERR_RESOURCE = 5,             /* out of memory, file unreadable */
    TOCOAD_ERR_BACKEND_UNAVAILABLE = 6,  /* the requested backend is not compiled in or cannot run here */
    TOCOAD_ERR_INTERNAL = 7              /* a bug: please report it with tocoad_last_error() */
} tocoad_status;

typedef enum tocoad_pixel_format {
    TOCOAD_PIXEL_BGR8 = 0,   /* 3 bytes per pixel, B G R (OpenCV's order; what the model expects) */
    TOCOAD_PIXEL_RGB8 = 1,   /* 3 bytes per pixel, R G B */
    TOCOAD_PIXEL_GRAY8 = 2,  /* 1 byte per pixel; replicated to B = G = R */
    TOCOAD_PIXEL_BGRA8 = 3   /* 4 bytes per pixel, B G R A; alpha is ignored */
} tocoad_pixel_format;

typedef enum tocoad_backend {
    TOCOAD_BACKEND_AUTO = 0,      /* TensorRT when compiled in and an engine fits this device, else CPU */
    TOCOAD_BACKEND_CPU = 1,       /* the bundle's ONNX model through OpenCV DNN */
    TOCOAD_BACKEND_TENSORRT = 2   /* a TensorRT engine of the bundle (fails if none fits) */
} tocoad_backend;

typedef enum tocoad_precision {
    TOCOAD_PRECISION_FP32 = 0,
    TOCOAD_PRECISION_INT8 = 1
} tocoad_precision;

typedef enum tocoad_search {
    TOCOAD_SEARCH_AUTO = 0,    /* refined when the bundle has an hnswlib index, else exact */
    TOCOAD_SEARCH_HNSW = 1,    /* the bundle's hnswlib index alone: map and image score approximate (upper bounds) */
    TOCOAD_SEARCH_EXACT = 2,   /* exact nearest neighbour over coreset.npy */
    TOCOAD_SEARCH_REFINED = 3  /* the index draws the map; the patches that may carry the image score are re-checked
                                  exactly, so the score (and the decision) is exact search's, as the Python runtime's
                                  default (fails if the bundle has no index) */
} tocoad_search;

/* Enum-valued fields and parameters are int32_t so that any value a caller passes is well defined
 * (and rejected with TOCOAD_ERR_INVALID_ARGUMENT / TOCOAD_ERR_INPUT when unknown). */
typedef struct tocoad_open_options {
    uint32_t struct_size;        /* sizeof(tocoad_open_options); set by tocoad_open_options_init */
    int32_t backend;             /* a tocoad_backend */
    int32_t precision;           /* a tocoad_precision */
    int32_t search;              /* a tocoad_search */
    int32_t threads;             /* CPU threads for OpenCV (process-wide); 0: leave OpenCV's default */
} tocoad_open_options;

typedef struct tocoad_detector tocoad_detector;
typedef struct tocoad_result tocoad_result;

/* Library version string, e.g. "0.1.0". Never NULL. */
TOCOAD_EDGE_API const char *tocoad_version(void);

/* The last error on the calling thread ("" if none). Never NULL. */
TOCOAD_EDGE_API const char *tocoad_last_error(void);

/* Fill options with the defaults: AUTO backend, FP32, AUTO search, threads 0. */
TOCOAD_EDGE_API void tocoad_open_options_init(tocoad_open_options *options);

/* Open a bundle folder. options may be NULL (defaults). On success *out is a new handle. */
TOCOAD_EDGE_API tocoad_status tocoad_open(const char *bundle_dir, const tocoad_open_options *options,
                                          tocoad_detector **out);

/* Close a handle (NULL is allowed). No other thread may use the handle during or after this call. */
TOCOAD_EDGE_API void tocoad_close(tocoad_detector *detector);

/* Model input size in pixels; frames of any size are resized to it. */
TOCOAD_EDGE_API tocoad_status tocoad_input_size(const tocoad_detector *detector, int32_t *width,
                                                int32_t *height);

/* Name of the backend in use ("cpu-opencv" or "tensorrt") and of the search ("refined", "hnsw" or "exact");
 * NULL if detector is NULL. Valid as long as the detector. */
TOCOAD_EDGE_API const char *tocoad_backend_name(const tocoad_detector *detector);
TOCOAD_EDGE_API const char *tocoad_search_name(const tocoad_detector *detector);

/*
 * Score one frame. pixels points to height rows of stride bytes each; a row holds width pixels of the
 * given format (stride >= width * bytes per pixel). The buffer is only read during the call.
 * On success *out is a new result owned by the caller.
 */
TOCOAD_EDGE_API tocoad_status tocoad_infer(tocoad_detector *detector, const uint8_t *pixels, int32_t width,
                                           int32_t height, int32_t stride, int32_t format /* tocoad_pixel_format */,
                                           tocoad_result **out);

/* score: normalised (the image threshold maps to 1.0); raw_score: max patch L2 distance;
 * is_anomalous: 1 when raw_score > the image threshold ("NG"), i.e. score > 1.0 for a bundle
 * whose normalisation maps the threshold to 1.0. Any out pointer may be NULL. */
TOCOAD_EDGE_API tocoad_status tocoad_result_scores(const tocoad_result *result, double *score,
                                                   double *raw_score, int32_t *is_anomalous);

/* "OK", "REVIEW" (the bundle has a review band and the score is in it) or "NG"; NULL if result is NULL.
 * Valid as long as the result. */
TOCOAD_EDGE_API const char *tocoad_result_decision(const tocoad_result *result);

/* Normalised anomaly map at frame size, row-major float32, width * height values, valid until
 * tocoad_result_free. */
TOCOAD_EDGE_API tocoad_status tocoad_result_map(const tocoad_result *result, const float **data,
                                                int32_t *width, int32_t *height);

/* Copy the anomaly map into dst (capacity in floats; must be >= width * height). */
TOCOAD_EDGE_API tocoad_status tocoad_result_copy_map(const tocoad_result *result, float *dst,
                                                     size_t capacity);

/* Free a result (NULL is allowed). */
TOCOAD_EDGE_API void tocoad_result_free(tocoad_result *result);

#ifdef __cplusplus
}
#endif

#endif /* TOCOAD_EDGE_H */
