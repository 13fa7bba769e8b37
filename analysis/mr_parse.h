/* mr_parse.h — the one way numbers are read from text (command-line options, config
 * values, router options, settings recorded in result files): strtoll/strtod with every
 * error checked, then a range. "99999999999" where an int is wanted is out of range,
 * never wrapped; "12x", "", " 5" and "0x10" are not integers.
 */
#ifndef MR_PARSE_H
#define MR_PARSE_H

/* Decimal integer in lo..hi. MR_EINPUT with "WHAT: 'TEXT' is not an integer" or
 * "WHAT: V is outside LO..HI"; *out is untouched on error. */
int mr_parse_ll(const char *what, const char *text, long long lo, long long hi, long long *out);

/* The same into an int (lo, hi within int). */
int mr_parse_int(const char *what, const char *text, int lo, int hi, int *out);

/* Finite number in [lo, hi] (no NaN, no infinity, nothing after the number). */
int mr_parse_double(const char *what, const char *text, double lo, double hi, double *out);

#endif
