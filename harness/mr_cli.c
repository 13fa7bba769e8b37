/* Argument helpers shared by the subcommands (mr_cli.h). */
#include "mr_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"

int mr_cli_parse_int(const char *name, const char *arg, long lo, long hi, long *out)
{
    long long v;
    MR_TRY(mr_parse_ll(name, arg, lo, hi, &v)); /* the one overflow-checked parser */
    *out = (long)v;
    return MR_OK;
}

int mr_cli_one_operand(int argc, char **argv, int first, const char *what)
{
    MR_REQUIRE(first < argc, MR_EINPUT, "%s is required", what);
    MR_REQUIRE(first + 1 == argc, MR_EINPUT, "unexpected argument '%s' (one %s)", argv[first + 1],
               what);
    return MR_OK;
}

int mr_cli_default_threads(void)
{
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

void mr_cli_getopt_start(void)
{
    optind = 1;
    opterr = 0; /* the caller reports with mr_cli_option_error */
}

int mr_cli_option_error(int c, char **argv)
{
    if (c == ':') return mr_error_set(MR_EINPUT, "option %s needs a value", argv[optind - 1]);
    return mr_error_set(MR_EINPUT, "unknown option '%s'", argv[optind - 1]);
}

int mr_cli_usage_error(const char *cmd, int status)
{
    fprintf(stderr, "moe-robust %s: %s\n(see 'moe-robust %s --help')\n", cmd, mr_error_message(),
            cmd);
    return mr_error_exit_code(status);
}

int mr_cli_parsed(const char *cmd, int status, int help, void (*usage)(FILE *fp))
{
    if (help == MR_CLI_VERSION) return mr_cli_version();
    if (help) {
        usage(stdout);
        return 0;
    }
    return status == MR_OK ? -1 : mr_cli_usage_error(cmd, status);
}

int mr_cli_done(const char *cmd, int status)
{
    if (status != MR_OK) fprintf(stderr, "moe-robust %s: %s\n", cmd, mr_error_message());
    return mr_error_exit_code(status);
}
