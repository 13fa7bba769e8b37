#include "mr_score.h"

#include <math.h>

int mr_score_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

double mr_score_xent(const float *x, int n, int target)
{
    double mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp(x[i] - mx);
    return log(s) + mx - x[target];
}
