/* mr_hf_json.h — typed, range-checked reads of Hugging Face JSON files (config.json,
 * model.safetensors.index.json) over cJSON, for io/mr_hf_config.c and io/mr_hf_import.c.
 *
 * Every error is MR_EINPUT naming the file, the key (with j->prefix for nested objects,
 * e.g. "rope_scaling.") and the value. A JSON null reads as an absent key, as the
 * transformers configuration classes treat None.
 * Ownership: mr_hf_json_load() fills *j; mr_hf_json_free() releases it.
 */
#ifndef MR_HF_JSON_H
#define MR_HF_JSON_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <stddef.h>

#define MR_HF_NO_DEFAULT INT_MIN      /* mr_hf_json_int: the key is required */
#define MR_HF_JSON_MAX ((long)64 << 20) /* largest JSON file read (an index of ~10^5 tensors) */

typedef struct mr_hf_json {
    char path[4096];
    char prefix[64];   /* printed before keys ("" at the top level) */
    cJSON *root;
} mr_hf_json;

int mr_hf_json_load(mr_hf_json *j, const char *path);
void mr_hf_json_free(mr_hf_json *j);

/* obj[key], or NULL when absent or null. */
const cJSON *mr_hf_json_get(const cJSON *obj, const char *key);

/* An integer in lo..hi; dflt when absent (MR_HF_NO_DEFAULT: required). */
int mr_hf_json_int(mr_hf_json *j, const cJSON *obj, const char *key, int dflt, int lo, int hi,
                   int *out);
/* A number in [lo, hi]; dflt when absent (NAN: required). */
int mr_hf_json_num(mr_hf_json *j, const cJSON *obj, const char *key, double dflt, double lo,
                   double hi, double *out);
int mr_hf_json_bool(mr_hf_json *j, const cJSON *obj, const char *key, int dflt, int *out);
/* A string into buf[cap]; dflt when absent (NULL: required). */
int mr_hf_json_str(mr_hf_json *j, const cJSON *obj, const char *key, const char *dflt, char *buf,
                   size_t cap);
/* A list of distinct indices 0..n-1 (absent: empty): flags[i] = 1 for each. */
int mr_hf_json_index_list(mr_hf_json *j, const cJSON *obj, const char *key, int n, char *flags);

/* "PATH: PREFIXkey = VALUE: why" as MR_EINPUT (value NULL: the key's value is not shown). */
int mr_hf_refuse(const mr_hf_json *j, const char *key, const cJSON *value, const char *why);

#endif
