/* JUnit XML of `moe-robust check --junit` (mr_gate.h): one testcase per guarded metric,
 * a failure for a regression or a missing metric, skipped for an ignored one; or one error
 * for inputs the gate could not read. Written atomically (io/mr_file.h). */
#include <stdio.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../io/mr_file.h"
#include "mr_gate.h"

static void xml_str(FILE *fp, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '&': fputs("&amp;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&apos;", fp); break;
        default:
            if ((unsigned char)*s < 32 && *s != '\t' && *s != '\n') fputc('?', fp);
            else fputc(*s, fp);
        }
    }
}

int mr_gate_write_junit(const char *path, const mr_gate_report *rep, const char *suite)
{
    MR_REQUIRE(path[0] && path[strlen(path) - 1] != '/', MR_EINPUT, "--junit %s: not a file name", path);
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    FILE *fp = t.fp;
    int fail = rep->count[MR_GATE_REGRESSED] + rep->count[MR_GATE_MISSING];
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(fp, "<testsuites name=\"moe-robust check\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\">\n",
            rep->n, fail, rep->count[MR_GATE_IGNORED]);
    fprintf(fp, "  <testsuite name=\"");
    xml_str(fp, suite);
    fprintf(fp, "\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\" time=\"0\">\n", rep->n,
            fail, rep->count[MR_GATE_IGNORED]);
    for (int i = 0; i < rep->n; i++) {
        const mr_gate_row *r = &rep->rows[i];
        const char *key = r->base->key, *colon = strrchr(key, ':');
        char cls[420];
        snprintf(cls, sizeof cls, "%.*s", colon ? (int)(colon - key) : (int)strlen(key), key);
        fprintf(fp, "    <testcase classname=\"");
        xml_str(fp, cls);
        fprintf(fp, "\" name=\"");
        xml_str(fp, colon ? colon + 1 : key);
        fprintf(fp, "\" time=\"0\"");
        char msg[1200];
        mr_gate_describe(msg, sizeof msg, r);
        if (r->status == MR_GATE_REGRESSED || r->status == MR_GATE_MISSING) {
            fprintf(fp, ">\n      <failure type=\"%s\" message=\"",
                    r->status == MR_GATE_MISSING ? "missing" : "regression");
            xml_str(fp, msg);
            fprintf(fp, "\">");
            xml_str(fp, msg);
            fprintf(fp, "</failure>\n    </testcase>\n");
        } else if (r->status == MR_GATE_IGNORED) {
            fprintf(fp, ">\n      <skipped message=\"");
            xml_str(fp, msg);
            fprintf(fp, "\"/>\n    </testcase>\n");
        } else {
            fprintf(fp, "/>\n");
        }
    }
    fprintf(fp, "  </testsuite>\n</testsuites>\n");
    return mr_textbuf_commit(&t, NULL, path);
}

int mr_gate_write_junit_error(const char *path, const char *suite, const char *message)
{
    MR_REQUIRE(path[0] && path[strlen(path) - 1] != '/', MR_EINPUT, "--junit %s: not a file name", path);
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    FILE *fp = t.fp;
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(fp, "<testsuites name=\"moe-robust check\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">\n");
    fprintf(fp, "  <testsuite name=\"");
    xml_str(fp, suite);
    fprintf(fp, "\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0\">\n");
    fprintf(fp, "    <testcase classname=\"moe-robust check\" name=\"inputs\" time=\"0\">\n");
    fprintf(fp, "      <error type=\"bad-input\" message=\"");
    xml_str(fp, message);
    fprintf(fp, "\">");
    xml_str(fp, message);
    fprintf(fp, "</error>\n    </testcase>\n  </testsuite>\n</testsuites>\n");
    return mr_textbuf_commit(&t, NULL, path);
}
