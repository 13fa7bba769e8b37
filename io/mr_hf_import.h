/* mr_hf_import.h — Hugging Face decoder MoE checkpoints to the model format v2
 * (`moe-robust import`, docs/import.md).
 *
 * A checkpoint directory holds config.json and model.safetensors, or shards
 * model-XXXXX-of-YYYYY.safetensors with model.safetensors.index.json. Families (config
 * `model_type`): mixtral, qwen2_moe, qwen3_moe, olmoe, as the transformers modeling files
 * define them (cited in docs/import.md and tools/hf_moe.py, the PyTorch implementation the
 * tests hold this to). What the engine does not implement is refused, naming the config key
 * and value; nothing is approximated.
 *
 * Errors: MR_EINPUT with a message naming the file and the key or tensor at fault (CLI
 * exit 2); MR_EIO / MR_ENOMEM for runtime failures (exit 1). The output is written to a
 * temporary file beside it and renamed at the end: on any error nothing is left behind.
 */
#ifndef MR_HF_IMPORT_H
#define MR_HF_IMPORT_H

#include "../analysis/mr_model.h"

enum mr_hf_family { MR_HF_MIXTRAL = 0, MR_HF_QWEN2_MOE, MR_HF_QWEN3_MOE, MR_HF_OLMOE };

/* The architecture of a checkpoint, as the model it imports to. */
typedef struct mr_hf_spec {
    int family;           /* enum mr_hf_family */
    mr_config cfg;        /* format v2, checked; cfg.moe_layers owned (mr_hf_spec_free) */
    int qkv_bias, o_bias; /* q/k/v and o projections have biases */
    int max_position;     /* max_position_embeddings */
} mr_hf_spec;

/* Read and check DIR/config.json. max_seq_len: the longest sequence the model will run
 * (0: max_position_embeddings, at most MR_MAX_SEQ); it decides whether a sliding window is
 * active (a window at least this long never masks anything). */
int mr_hf_read_config(mr_hf_spec *s, const char *dir, int max_seq_len);
void mr_hf_spec_free(mr_hf_spec *s);
const char *mr_hf_family_name(int family);

typedef struct mr_hf_import_opts {
    int max_seq_len;      /* as for mr_hf_read_config */
} mr_hf_import_opts;

/* Convert the checkpoint in `dir` to the model file `out` (format v2). */
int mr_hf_import(const char *dir, const char *out, const mr_hf_import_opts *o);

#endif
