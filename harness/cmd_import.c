/* moe-robust import DIR --out MODEL.h5 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../io/mr_fs.h"
#include "../io/mr_hf_import.h"
#include "mr_cli.h"

static void usage(FILE *fp); /* --help, at the end of this file */

int mr_cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        MR_OPT("out", 'o'), MR_OPT("max-seq-len", 'T'), MR_CLI_OPTS_END};
    const char *out = NULL;
    mr_hf_import_opts o = {0};
    long v;
    int st = MR_OK, c;
    mr_cli_getopt_start();
    while (st == MR_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'T':
            st = mr_cli_parse_int("--max-seq-len", optarg, 1, 65536, &v);
            o.max_seq_len = (int)v;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': return mr_cli_version();
        default: st = mr_cli_option_error(c, argv);
        }
    }
    const char *dir = optind < argc ? argv[optind] : NULL;
    if (st == MR_OK) st = mr_cli_one_operand(argc, argv, optind, "checkpoint DIR");
    if (st == MR_OK && !out) st = mr_error_set(MR_EINPUT, "--out is required");
    /* the output's directory and kind are checked before any work, and that it is none
     * of the checkpoint's files (io/mr_fs.h) */
    if (st == MR_OK) st = mr_fs_check_output_in_dir(out, "--out", dir);
    if (st != MR_OK) return mr_cli_usage_error("import", st);
    st = mr_hf_import(dir, out, &o);
    if (st != MR_OK) {
        fprintf(stderr, "moe-robust import: %s\n", mr_error_message());
        return mr_error_exit_code(st);
    }
    printf("%s: imported from %s\n", out, dir);
    return 0;
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust import DIR --out MODEL.h5 [--max-seq-len N]\n"
            "\n"
            "Converts a Hugging Face decoder MoE checkpoint directory (config.json and\n"
            "model.safetensors, or shards with model.safetensors.index.json) to the moe-robust\n"
            "model format v2 (docs/model-format.md, docs/import.md). Families (config model_type):\n"
            "mixtral, qwen2_moe, qwen3_moe, olmoe. Weights in bfloat16, float16 or float32 are\n"
            "converted to float32 exactly. What the engine does not implement (another RoPE\n"
            "scaling than linear, an active sliding window, an activation other than silu, ...)\n"
            "is refused with exit status 2, naming the config key and value; so is a damaged\n"
            "checkpoint (naming the file and tensor). The output appears only when complete.\n"
            "\n"
            "  --out FILE          the model file to write\n"
            "  --max-seq-len N     longest sequence the model will be run on (default:\n"
            "                      max_position_embeddings, at most 65536); a sliding window at\n"
            "                      least this long is inactive and accepted\n"
            "  -h, --help          this text\n"
            "  --version           the version\n");
}
