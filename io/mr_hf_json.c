#include "mr_hf_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../analysis/mr_error.h"
#include "mr_fs.h"
#include "mr_json.h"

int mr_hf_json_load(mr_hf_json *j, const char *path)
{
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s", path);
    /* a regular file of bounded size, read whole (io/mr_fs.h: never blocks on a FIFO) */
    char *buf;
    size_t n;
    MR_TRY(mr_fs_read_input(path, (size_t)MR_HF_JSON_MAX, "JSON file of a checkpoint", &buf, &n));
    j->root = cJSON_ParseWithLength(buf, n);
    free(buf);
    MR_REQUIRE(j->root, MR_EINPUT, "%s: not valid JSON", path);
    if (!cJSON_IsObject(j->root)) {
        mr_hf_json_free(j);
        return mr_error_set(MR_EINPUT, "%s: not a JSON object", path);
    }
    int st = mr_json_check_unique_keys(j->root, path); /* io/mr_json.h */
    if (st != MR_OK) mr_hf_json_free(j);
    return st;
}

void mr_hf_json_free(mr_hf_json *j)
{
    cJSON_Delete(j->root);
    j->root = NULL;
}

const cJSON *mr_hf_json_get(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int mr_hf_refuse(const mr_hf_json *j, const char *key, const cJSON *value, const char *why)
{
    char shown[80] = "";
    if (value) {
        char *p = cJSON_PrintUnformatted(value);
        if (p && strlen(p) > 60) {
            p[57] = '\0';
            snprintf(shown, sizeof shown, " = %s...", p);
        } else if (p) {
            snprintf(shown, sizeof shown, " = %s", p);
        }
        free(p);
    }
    return mr_error_set(MR_EINPUT, "%s: %s%s%s: %s", j->path, j->prefix, key, shown, why);
}

static int missing(const mr_hf_json *j, const char *key)
{
    return mr_error_set(MR_EINPUT, "%s: key %s%s is missing", j->path, j->prefix, key);
}

int mr_hf_json_num(mr_hf_json *j, const cJSON *obj, const char *key, double dflt, double lo,
                   double hi, double *out)
{
    const cJSON *v = mr_hf_json_get(obj, key);
    if (!v) {
        if (isnan(dflt)) return missing(j, key);
        *out = dflt;
        return MR_OK;
    }
    char why[96];
    snprintf(why, sizeof why, "must be a number in [%g, %g]", lo, hi);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return mr_hf_refuse(j, key, v, why);
    *out = v->valuedouble;
    return MR_OK;
}

int mr_hf_json_int(mr_hf_json *j, const cJSON *obj, const char *key, int dflt, int lo, int hi,
                   int *out)
{
    const cJSON *v = mr_hf_json_get(obj, key);
    if (!v) {
        if (dflt == MR_HF_NO_DEFAULT) return missing(j, key);
        *out = dflt;
        return MR_OK;
    }
    char why[96];
    snprintf(why, sizeof why, "must be an integer in %d..%d", lo, hi);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi && d == floor(d))) return mr_hf_refuse(j, key, v, why);
    *out = (int)d;
    return MR_OK;
}

int mr_hf_json_bool(mr_hf_json *j, const cJSON *obj, const char *key, int dflt, int *out)
{
    const cJSON *v = mr_hf_json_get(obj, key);
    if (!v) {
        *out = dflt;
        return MR_OK;
    }
    if (!cJSON_IsBool(v)) return mr_hf_refuse(j, key, v, "must be true or false");
    *out = cJSON_IsTrue(v);
    return MR_OK;
}

int mr_hf_json_str(mr_hf_json *j, const cJSON *obj, const char *key, const char *dflt, char *buf,
                   size_t cap)
{
    const cJSON *v = mr_hf_json_get(obj, key);
    if (!v) {
        if (!dflt) return missing(j, key);
        snprintf(buf, cap, "%s", dflt);
        return MR_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring || strlen(v->valuestring) >= cap)
        return mr_hf_refuse(j, key, v, "must be a (short) string");
    snprintf(buf, cap, "%s", v->valuestring);
    return MR_OK;
}

int mr_hf_json_index_list(mr_hf_json *j, const cJSON *obj, const char *key, int n, char *flags)
{
    const cJSON *v = mr_hf_json_get(obj, key);
    if (!v) return MR_OK;
    char why[96];
    snprintf(why, sizeof why, "must be a list of distinct layer indices 0..%d", n - 1);
    if (!cJSON_IsArray(v)) return mr_hf_refuse(j, key, v, why);
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d >= 0 && d < n && d == floor(d)) || flags[(int)d]) return mr_hf_refuse(j, key, v, why);
        flags[(int)d] = 1;
    }
    return MR_OK;
}
