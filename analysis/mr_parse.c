#include "mr_parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "mr_error.h"

int mr_parse_ll(const char *what, const char *text, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    /* strtoll skips leading blanks and reads "0x10" as 0: a value is its digits only */
    int digits = text[0] && !isspace((unsigned char)text[0]) &&
                 (isdigit((unsigned char)text[0]) ||
                  ((text[0] == '-' || text[0] == '+') && isdigit((unsigned char)text[1])));
    long long v = digits ? strtoll(text, &end, 10) : 0;
    if (!digits || *end != '\0')
        return mr_error_set(MR_EINPUT, "%s: '%s' is not an integer", what, text);
    if (errno == ERANGE || v < lo || v > hi)
        return mr_error_set(MR_EINPUT, "%s: %s is outside %lld..%lld", what, text, lo, hi);
    *out = v;
    return MR_OK;
}

int mr_parse_int(const char *what, const char *text, int lo, int hi, int *out)
{
    long long v = 0;
    MR_TRY(mr_parse_ll(what, text, lo, hi, &v));
    *out = (int)v;
    return MR_OK;
}

int mr_parse_double(const char *what, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = text[0] && !isspace((unsigned char)text[0]) ? strtod(text, &end) : 0.0;
    if (!text[0] || isspace((unsigned char)text[0]) || end == text || *end != '\0')
        return mr_error_set(MR_EINPUT, "%s: '%s' is not a number", what, text);
    if (errno == ERANGE || !isfinite(v) || v < lo || v > hi)
        return mr_error_set(MR_EINPUT, "%s: %s is outside [%g, %g]", what, text, lo, hi);
    *out = v;
    return MR_OK;
}
