/* User-supplied strings (model, router, corruption names, paths) inside the report's
 * gnuplot scripts, Markdown and LaTeX: quoted, and never a control character. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mr_report_impl.h"

void mr_report_fmt(char *buf, size_t cap, double v, int decimals)
{
    if (!isfinite(v))
        snprintf(buf, cap, "n/a");
    else
        snprintf(buf, cap, "%.*f", decimals, v);
}

/* a user-supplied string inside a comment or a gnuplot/markdown/LaTeX string: no
 * control characters */
void mr_rep_clean_str(char *dst, size_t cap, const char *src)
{
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 1 < cap; i++)
        dst[j++] = (unsigned char)src[i] < 32 || src[i] == 127 ? '?' : src[i];
    dst[j] = '\0';
}

/* a gnuplot double-quoted string */
void mr_rep_gp_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', fp);
        fputc((unsigned char)*s < 32 ? '?' : *s, fp);
    }
    fputc('"', fp);
}

void mr_rep_tex_str(FILE *fp, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '_': case '%': case '&': case '#': case '$': case '{': case '}':
            fprintf(fp, "\\%c", *s);
            break;
        case '~': fputs("\\textasciitilde{}", fp); break;
        case '^': fputs("\\textasciicircum{}", fp); break;
        case '\\': fputs("\\textbackslash{}", fp); break;
        default: fputc((unsigned char)*s < 32 ? '?' : *s, fp);
        }
    }
}

void mr_rep_md_str(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (strchr("|*`[]<>\\", *s)) fputc('\\', fp);
        fputc((unsigned char)*s < 32 ? '?' : *s, fp);
    }
}

const char *mr_rep_basename(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}
