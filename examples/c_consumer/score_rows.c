/* score_rows.c: divcore's row kernels from plain C (or C++), no Python involved.
 *
 * Scores three candidate next-token rows of a decoder the way a beam search would:
 * log-sum-exp, the loss of the chosen token, the entropy of each row, the cross-entropy
 * against a soft target and the KL divergence from a teacher's row.
 *
 *     cc -O2 -Wall -Wextra -I "$(python -c 'import divcore; print(divcore.get_include())')" \
 *        score_rows.c -o score_rows -lm
 *     ./score_rows
 *
 * The same file builds as C++ (c++ -x c++ ...). Nothing is linked from divcore: the
 * kernels are static inline functions of the header, and run the best instruction set of
 * the CPU (chosen at the first call; -DDIVCORE_PORTABLE for the portable build only).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "divcore/kernels.h"

#define ROWS 3
#define CLASSES 5

int main(void)
{
    /* Row 2 has a masked class (-inf: it leaves the distribution). */
    const double logits[ROWS][CLASSES] = {
        {2.0, 1.0, 0.1, -1.0, 0.5},
        {0.5, 2.5, -1.0, 0.0, 0.0},
        {-INFINITY, 0.0, 3.0, 1.0, -2.0},
    };
    const double teacher[ROWS][CLASSES] = {
        {1.5, 1.2, 0.0, -0.5, 0.3},
        {0.5, 2.5, -1.0, 0.0, 0.0}, /* the same as the model's row: KL = 0 */
        {-INFINITY, 0.5, 2.0, 1.0, -1.0},
    };
    const double soft_target[CLASSES] = {0.0, 0.1, 0.7, 0.2, 0.0};
    const ptrdiff_t chosen[ROWS] = {0, 1, 2};
    const float empty_row[1] = {0.0f};
    double log_probs[CLASSES];

    printf("divcore headers %s\n", DIVCORE_VERSION);
    for (int i = 0; i < ROWS; i++) {
        const double *x = logits[i];
        printf("row %d: logsumexp %.6f  -log q[%td] %.6f  entropy %.6f  "
               "CE(target) %.6f  KL(teacher || row) %.6f\n",
               i, dc_logsumexp_f64(x, CLASSES), chosen[i],
               dc_ce_label_f64(x, CLASSES, chosen[i]), dc_entropy_logits_f64(x, CLASSES),
               dc_ce_probs_f64(x, soft_target, CLASSES),
               dc_kl_logits_f64(teacher[i], x, CLASSES));
    }

    /* The log-probabilities of row 2, written into a buffer (log q = -inf where masked). */
    if (dc_log_softmax_f64(logits[2], CLASSES, log_probs)) {
        printf("row 2 log-probabilities:");
        for (int c = 0; c < CLASSES; c++) printf(" %.4f", log_probs[c]);
        printf("\n");
    }

    /* All rows in one call of a batch kernel: the per-row losses and their mean, as
     * divcore.cross_entropy(logits, labels) computes them (strides in bytes). */
    {
        const int64_t labels[ROWS] = {0, 1, 2};
        double losses[ROWS];
        dc_reduced red;
        const ptrdiff_t status = dc_batch_ce_labels_f64(
            &logits[0][0], ROWS, CLASSES, sizeof logits[0], sizeof logits[0][0], labels, 1,
            NULL, -100, NULL, 0, 0, losses, &red);
        if (status != DC_BATCH_OK) return 1;
        printf("batch: losses %.6f %.6f %.6f, mean %.6f\n", losses[0], losses[1], losses[2],
               red.mean);
    }

    /* A row with no class left has no distribution: logsumexp -inf, the rest NaN. */
    printf("empty row: logsumexp %f, entropy %f\n", dc_logsumexp_f32(empty_row, 0),
           dc_entropy_logits_f32(empty_row, 0));
    return 0;
}
