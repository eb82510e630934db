/* Opens a bundle through the installed library and scores a flat gray frame. Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tocoad_edge/tocoad_edge.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    tocoad_detector *d = NULL;
    if (tocoad_open(argv[1], NULL, &d) != TOCOAD_OK) {
        fprintf(stderr, "open: %s\n", tocoad_last_error());
        return 1;
    }
    unsigned char frame[32 * 24];
    memset(frame, 128, sizeof frame);
    tocoad_result *r = NULL;
    if (tocoad_infer(d, frame, 32, 24, 32, TOCOAD_PIXEL_GRAY8, &r) != TOCOAD_OK) {
        fprintf(stderr, "infer: %s\n", tocoad_last_error());
        tocoad_close(d);
        return 1;
    }
    double score = 0.0;
    tocoad_result_scores(r, &score, NULL, NULL);
    printf("tocoad_edge %s: score %.4f (%s)\n", tocoad_version(), score, tocoad_result_decision(r));
    tocoad_result_free(r);
    tocoad_close(d);
    return 0;
}
