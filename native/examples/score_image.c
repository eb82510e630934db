/*
 * score_image: score one image with a tocoad-edge bundle through the C ABI.
 *
 *   score_image <bundle_dir> <image.ppm|image.pgm> [cpu|auto|tensorrt]
 *
 * Reads binary PPM (P6, RGB) or PGM (P5, gray) files so that the example needs no image library;
 * convert with e.g. `convert frame.png frame.ppm`. Prints the normalised score, the raw score, the
 * decision and the range of the anomaly map. Exit status: 0 scored, 2 error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tocoad_edge/tocoad_edge.h"

typedef struct {
    int32_t width, height;
    tocoad_pixel_format format;
    uint8_t *pixels;
} image;

static int read_token(FILE *f, char *buf, size_t size) {
    int c;
    size_t n = 0;
    do {
        c = fgetc(f);
        if (c == '#')
            while (c != '\n' && c != EOF) c = fgetc(f);
    } while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    while (c != EOF && c != ' ' && c != '\t' && c != '\n' && c != '\r' && n + 1 < size) {
        buf[n++] = (char)c;
        c = fgetc(f);
    }
    buf[n] = '\0';
    return n > 0;
}

static int read_pnm(const char *path, image *img) {
    char magic[4], w[16], h[16], maxval[16];
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 0;
    }
    if (!read_token(f, magic, sizeof magic) || !read_token(f, w, sizeof w) || !read_token(f, h, sizeof h) ||
        !read_token(f, maxval, sizeof maxval) || (strcmp(magic, "P6") != 0 && strcmp(magic, "P5") != 0) ||
        strcmp(maxval, "255") != 0) {
        fprintf(stderr, "%s: expected a binary PPM (P6) or PGM (P5) with maxval 255\n", path);
        fclose(f);
        return 0;
    }
    img->width = atoi(w);
    img->height = atoi(h);
    img->format = magic[1] == '6' ? TOCOAD_PIXEL_RGB8 : TOCOAD_PIXEL_GRAY8;
    size_t bpp = img->format == TOCOAD_PIXEL_RGB8 ? 3 : 1;
    size_t size = (size_t)img->width * (size_t)img->height * bpp;
    img->pixels = img->width > 0 && img->height > 0 ? (uint8_t *)malloc(size) : NULL;
    if (!img->pixels || fread(img->pixels, 1, size, f) != size) {
        fprintf(stderr, "%s: truncated or empty image data\n", path);
        free(img->pixels);
        fclose(f);
        return 0;
    }
    fclose(f);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s <bundle_dir> <image.ppm|image.pgm> [cpu|auto|tensorrt]\n", argv[0]);
        return 2;
    }
    tocoad_open_options options;
    tocoad_open_options_init(&options);
    options.backend = TOCOAD_BACKEND_CPU;
    if (argc == 4 && strcmp(argv[3], "auto") == 0) options.backend = TOCOAD_BACKEND_AUTO;
    if (argc == 4 && strcmp(argv[3], "tensorrt") == 0) options.backend = TOCOAD_BACKEND_TENSORRT;

    image img;
    if (!read_pnm(argv[2], &img)) return 2;

    tocoad_detector *detector = NULL;
    if (tocoad_open(argv[1], &options, &detector) != TOCOAD_OK) {
        fprintf(stderr, "error: %s\n", tocoad_last_error());
        free(img.pixels);
        return 2;
    }
    int32_t bpp = img.format == TOCOAD_PIXEL_RGB8 ? 3 : 1;
    tocoad_result *result = NULL;
    if (tocoad_infer(detector, img.pixels, img.width, img.height, img.width * bpp, img.format, &result) != TOCOAD_OK) {
        fprintf(stderr, "error: %s\n", tocoad_last_error());
        tocoad_close(detector);
        free(img.pixels);
        return 2;
    }
    double score = 0.0, raw = 0.0;
    int32_t ng = 0, mw = 0, mh = 0;
    const float *map = NULL;
    tocoad_result_scores(result, &score, &raw, &ng);
    tocoad_result_map(result, &map, &mw, &mh);
    float lo = map[0], hi = map[0];
    for (size_t i = 1; i < (size_t)mw * (size_t)mh; ++i) {
        if (map[i] < lo) lo = map[i];
        if (map[i] > hi) hi = map[i];
    }
    printf("{\"score\": %.6f, \"raw_score\": %.6f, \"decision\": \"%s\", \"map\": [%d, %d], "
           "\"map_min\": %.6f, \"map_max\": %.6f, \"backend\": \"%s\", \"search\": \"%s\"}\n",
           score, raw, tocoad_result_decision(result), mw, mh, lo, hi, tocoad_backend_name(detector),
           tocoad_search_name(detector));
    tocoad_result_free(result);
    tocoad_close(detector);
    free(img.pixels);
    return 0;
}
