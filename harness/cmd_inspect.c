/* moe-robust inspect MODEL.h5 */
#include <stdio.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_cli.h"
#include "../io/mr_model_io.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: moe-robust inspect MODEL.h5\n"
                "\n"
                "Loads and validates MODEL.h5 (docs/model-format.md) and prints its architecture,\n"
                "parameter count, router tensors and training metadata. Exit 0 if valid, 2 with the first problem\n"
                "(file and HDF5 path) if not.\n"
                "\n"
                "  -h, --help   this text\n"
                "  --version    the version\n");
}

int mr_cmd_inspect(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) return mr_cli_version();
    const char *why = argc < 2 ? "expected MODEL.h5" : NULL;
    char msg[600];
    for (int i = 1; !why && i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1]) {
            snprintf(msg, sizeof msg, "unknown option '%s'", argv[i]);
            why = msg;
        }
    if (!why && argc > 2) {
        snprintf(msg, sizeof msg, "unexpected argument '%s' (one MODEL.h5 at a time)", argv[2]);
        why = msg;
    }
    if (why) {
        fprintf(stderr, "moe-robust inspect: %s\n(see 'moe-robust inspect --help')\n", why);
        return 2;
    }
    mr_model *m;
    int st = mr_model_load(&m, argv[1]);
    if (st != MR_OK) {
        fprintf(stderr, "moe-robust inspect: %s\n", mr_error_message());
        return mr_error_exit_code(st);
    }
    mr_model_print_summary(stdout, m);
    mr_model_print_metadata(stdout, argv[1]);
    printf("validation   OK\n");
    mr_model_free(m);
    return 0;
}
