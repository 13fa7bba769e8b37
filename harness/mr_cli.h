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

/* getopt_long table entries: an option that takes a value, a flag, and the end of every
 * subcommand's table (-h/--help as 'h', --version as 'V') */
#define MR_OPT(name, key) {name, required_argument, 0, key}
#define MR_FLAG(name, key) {name, no_argument, 0, key}
#define MR_CLI_OPTS_END MR_FLAG("help", 'h'), MR_FLAG("version", 'V'), {0, 0, 0, 0}
/* Before a getopt_long loop over a subcommand's argv (short options ":h"). */
void mr_cli_getopt_start(void);
/* MR_EINPUT for getopt's ':' (an option without its value) or '?' (an unknown option),
 * naming the option. */
int mr_cli_option_error(int c, char **argv);
/* A usage error of subcommand `cmd`: "moe-robust CMD: MESSAGE" and a pointer to its
 * --help on stderr; returns the exit status of `status` (2 for MR_EINPUT). */
int mr_cli_usage_error(const char *cmd, int status);
/* After a subcommand's argument parser set `help` (1 --help, MR_CLI_VERSION --version)
 * and returned `status`: prints the usage or version, or the usage error. Returns the exit
 * status to return, or -1 to go on. */
#define MR_CLI_VERSION 2
int mr_cli_parsed(const char *cmd, int status, int help, void (*usage)(FILE *fp));
/* The end of a subcommand: "moe-robust CMD: MESSAGE" on stderr for a failure; returns
 * the exit status of `status`. */
int mr_cli_done(const char *cmd, int status);
/* `--version` of every command: prints "moe-robust VERSION" on stdout, returns 0. */
int mr_cli_version(void);

struct mr_grid;
/* `run --dry-run`: print the grid of g and its estimated time (a short calibration on
 * `threads` threads) to fp; nothing is written to out_dir. */
int mr_cmd_run_dry(struct mr_grid *g, const char *out_dir, int threads, FILE *fp);

#endif
