/* mr_score.h — scoring one prediction: argmax (ties to the lower index, as
 * torch.argmax) and cross-entropy -log softmax(x)[target] in double. Shared by the
 * evaluation driver (harness/mr_eval.c), the trace writer (io/mr_routing_io.c) and the
 * trace analysis (harness/mr_analyze.c), so that a trace scores exactly as a run.
 */
#ifndef MR_SCORE_H
#define MR_SCORE_H

int mr_score_argmax(const float *x, int n);
double mr_score_xent(const float *x, int n, int target);

#endif
