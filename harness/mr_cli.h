/* mr_cli.h — subcommands of the moe-robust CLI and their shared argument helpers. */
#ifndef MR_CLI_H
#define MR_CLI_H

#include <stdio.h>

int mr_cmd_inspect(int argc, char **argv);
int mr_cmd_eval(int argc, char **argv);
int mr_cmd_run(int argc, char **argv);
int mr_cmd_merge(int argc, char **argv);
int mr_cmd_corrupt(int argc, char **argv);
int mr_cmd_attack(int argc, char **argv);
int mr_cmd_report(int argc, char **argv);
int mr_cmd_baseline(int argc, char **argv);
int mr_cmd_check(int argc, char **argv);
int mr_cmd_compress(int argc, char **argv);
int mr_cmd_import(int argc, char **argv);
int mr_cmd_analyze(int argc, char **argv);

/* --shard I/N: at most this many shards (a shard without groups does nothing). */
#define MR_MAX_SHARDS 1000000

/* Strict integer parse of option `name` (analysis/mr_parse.h: overflow-checked);
 * MR_EINPUT naming the option and value. */
int mr_cli_parse_int(const char *name, const char *arg, long lo, long hi, long *out);
/* The one operand of a command (argv[first..argc)): MR_EINPUT "WHAT is required", or
 * "unexpected argument 'X' (one WHAT)" naming the first extra one. */
int mr_cli_one_operand(int argc, char **argv, int first, const char *what);
/* Default thread count: the processors OpenMP sees. */
int mr_cli_default_threads(void);
/* `--version` of every command: prints "moe-robust VERSION" on stdout, returns 0. */
int mr_cli_version(void);

struct mr_grid;
/* `run --dry-run`: print the grid of g and its estimated time (a short calibration on
 * `threads` threads) to fp; nothing is written to out_dir. */
int mr_cmd_run_dry(struct mr_grid *g, const char *out_dir, int threads, FILE *fp);

#endif
