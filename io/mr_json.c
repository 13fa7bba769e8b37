#include "mr_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* `where` names `node` ("the top level", "\"rules\"[1]", ...). Depth is bounded by cJSON's
 * own nesting limit (CJSON_NESTING_LIMIT), so the recursion is too. */
static int check(const cJSON *node, const char *file, const char *where)
{
    int n = 0;
    for (const cJSON *c = node->child; c; c = c->next) n++;
    if (cJSON_IsObject(node) && n > 1) {
        /* sorted names: equal ones are neighbours (n log n, headers hold thousands) */
        const char **v = malloc((size_t)n * sizeof *v);
        MR_REQUIRE(v, MR_ENOMEM, "out of memory");
        int i = 0;
        for (const cJSON *c = node->child; c; c = c->next) v[i++] = c->string ? c->string : "";
        qsort(v, (size_t)n, sizeof *v, cmp_name);
        const char *dup = NULL;
        for (i = 1; i < n && !dup; i++)
            if (strcmp(v[i - 1], v[i]) == 0) dup = v[i];
        int st = MR_OK;
        if (dup)
            st = mr_error_set(MR_EINPUT, "%s: key \"%.200s\" appears twice in %s (a JSON reader "
                              "keeps one of the two silently): give it once",
                              file, dup, where);
        free(v);
        MR_TRY(st);
    }
    int i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        char sub[512];
        if (cJSON_IsObject(node))
            snprintf(sub, sizeof sub, "\"%.200s\"", c->string ? c->string : "");
        else
            snprintf(sub, sizeof sub, "%.300s[%d]", where, i);
        MR_TRY(check(c, file, sub));
    }
    return MR_OK;
}

int mr_json_check_unique_keys(const cJSON *root, const char *file)
{
    return root ? check(root, file, "the top level") : MR_OK;
}
