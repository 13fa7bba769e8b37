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

/* A character of a key or option name: ASCII letter, digit, '_' or '-' (section, router
 * and corruption names also allow '.'). Only such names survive being written to a
 * config file and read back by inih (`;k` is a comment, `[k` a section, `a:b` the key a). */
static inline int mr_parse_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

#endif
