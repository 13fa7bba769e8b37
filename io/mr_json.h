/* mr_json.h — rules every JSON input obeys beyond cJSON's syntax (checkpoint config.json
 * and index, safetensors headers, `check`'s baseline and tolerance files).
 *
 * cJSON keeps every member of an object, and a lookup returns the first of two equal
 * keys, while Python's json (what wrote or will read the file: transformers, safetensors)
 * keeps the last: a key given twice would silently mean one thing to this tool and
 * another to the reference (issue #23 item 6, for JSON). So it is refused, like a config
 * key given twice.
 */
#ifndef MR_JSON_H
#define MR_JSON_H

#include <cjson/cJSON.h>

/* MR_OK, or MR_EINPUT "FILE: key \"K\" appears twice in OBJECT" for the first object
 * (depth first) that holds two members named alike. `file` names the file in the
 * message. Nothing is allocated that outlives the call. */
int mr_json_check_unique_keys(const cJSON *root, const char *file);

#endif
