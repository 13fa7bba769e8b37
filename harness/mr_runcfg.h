/* mr_runcfg.h — the INI configuration of `moe-robust run` (docs/config.md), parsed with
 * inih. Every key is checked where it is read; unknown sections and keys, bad numbers
 * and values out of range are errors of the form "FILE:LINE: what is wrong".
 * Checks that need the model or data files (existence, k <= E, corruption modality)
 * are done by mr_grid_build() (harness/mr_grid.h) — still before anything is written.
 * Ownership: plain struct, no heap memory.
 */
#ifndef MR_RUNCFG_H
#define MR_RUNCFG_H

#include <stdint.h>
#include <stdio.h>

#include "../analysis/mr_router.h"
#include "../io/mr_summary.h" /* MR_OUT_* */

#define MR_CFG_MAX_MODELS 16
#define MR_CFG_MAX_CKPT 16
#define MR_CFG_MAX_ROUTERS 32
#define MR_CFG_MAX_K 16
#define MR_CFG_MAX_CORR 128
#define MR_CFG_MAX_ATTACKS 8
#define MR_CFG_MAX_EPS 16
#define MR_PATH_LEN 1024
/* A config is text that names files and lists settings; anything larger is not one. */
#define MR_CFG_MAX_BYTES ((size_t)16 << 20)
#define MR_CFG_MAX_SET 64
#define MR_SET_LEN (MR_PATH_LEN + 128)

typedef struct mr_cfg_model {
    char name[MR_NAME_LEN];
    char path[MR_PATH_LEN];
    int n_ckpt;
    char ckpt[MR_CFG_MAX_CKPT][MR_PATH_LEN]; /* consecutive checkpoints, oldest first */
    int line;                                 /* of the section header */
    /* routers = ...: the [router] sections run on this model (0 of them: all), as
     * names while parsing, resolved to indices once every section is known */
    int n_sel;
    char sel[MR_CFG_MAX_ROUTERS][MR_NAME_LEN];
    int sel_router[MR_CFG_MAX_ROUTERS];
    int sel_line;
    /* compress = METHOD:K: the model evaluated is `path` compressed with that method to K
     * experts (docs/compression.md), computed once per run into DIR/models/NAME.h5 */
    char compress[MR_NAME_LEN]; /* method, "" for none */
    int compress_k;
    int compress_line;
} mr_cfg_model;

typedef struct mr_cfg_router {
    char name[MR_NAME_LEN];   /* label in results */
    char type[MR_NAME_LEN];   /* router type (default: the name) */
    int n_k;                  /* 0: the model's top_k */
    int ks[MR_CFG_MAX_K];
    int k_line;
    int no_corruptions;       /* corruptions = no: clean and fluctuation cells only */
    mr_router_opts opts;      /* every other key */
    int line;
} mr_cfg_router;

typedef struct mr_run_config {
    char file[MR_PATH_LEN];
    /* `run --set SECTION.KEY=VALUE` overrides, as given; a key set by the i-th has line
     * -(i + 1) (mr_runcfg_where). Not part of the resolved config or its hash: the
     * values they set are. */
    int n_set;
    char set[MR_CFG_MAX_SET][MR_SET_LEN];
    /* [run] */
    char out[MR_PATH_LEN];
    uint64_t seed;
    int bootstrap;
    double level;
    int batch;
    long limit;
    int formats;              /* MR_OUT_* bits; results.h5 is always written */
    char reference[MR_NAME_LEN]; /* router whose errors normalize CE (default: first) */
    /* [data] */
    char data[MR_PATH_LEN];
    int data_line;
    char calib[MR_PATH_LEN];  /* calibration data of `compress` models ("" for none) */
    long calib_limit;         /* its first calib_limit samples */
    int calib_line;
    /* [model NAME] */
    int n_models;
    mr_cfg_model models[MR_CFG_MAX_MODELS];
    /* [router NAME] */
    int n_routers;
    mr_cfg_router routers[MR_CFG_MAX_ROUTERS];
    /* [corruptions] */
    int n_corr_names;
    char corr_names[MR_CFG_MAX_CORR][MR_NAME_LEN]; /* names or groups: all image text embed */
    int corr_line;
    int sev_mask;             /* bit s set: severity s (1..MR_SEVERITY_MAX) */
    /* [attack] (docs/attacks.md): adversarial cells per model, router and k, white-box
     * against that model and router, and with transfer = yes also crafted through the
     * reference router and scored on every other */
    int n_attacks;            /* 0: no [attack] section */
    char attacks[MR_CFG_MAX_ATTACKS][MR_NAME_LEN]; /* methods (analysis/attacks/mr_attack.h) */
    int attack_line;
    int n_eps;
    int eps[MR_CFG_MAX_EPS];  /* the eps ladder in grey levels (eps = e / 255), ascending */
    int attack_steps;         /* iterations or queries; 0: each method's default */
    int transfer;             /* 1: also transfer attacks from the reference router */
    int n_objectives;         /* objectives: each method x eps once per objective */
    int objectives[2];        /* enum mr_attack_objective, in the order given; default loss */
    int route_layer;          /* the routing objective's block (an MoE block); -1: each
                                 model's first */
    int route_line;           /* where route_layer was set (mr_runcfg_where), 0: not set */
} mr_run_config;

/* Whether [model] `model` runs [router] `router` (its `routers` key, default all). */
int mr_runcfg_model_runs(const mr_run_config *c, int model, int router);

/* Parse and check a config file. */
int mr_runcfg_load(mr_run_config *c, const char *path);
/* The same from an open stream (e.g. fmemopen: the fuzz harness); `path` names it in
 * messages. The caller closes fp. */
int mr_runcfg_parse(mr_run_config *c, FILE *fp, const char *path);

/* The same with overrides `SECTION.KEY=VALUE` (`run --set`, docs/config.md): SECTION is
 * run, data, corruptions, model.NAME or router.NAME (a model or router section that does
 * not exist is added); every line of the file that sets SECTION.KEY is dropped, and each
 * override is then read as if it were such a line, in order, with the same checks (a
 * repeatable key, e.g. checkpoint, may be set several times). Errors name the file and
 * the override: "FILE: --set run.limit=x: limit = x: not an integer >= 0". */
int mr_runcfg_load_set(mr_run_config *c, const char *path, int n_set, char *const *set);
int mr_runcfg_parse_set(mr_run_config *c, FILE *fp, const char *path, int n_set,
                        char *const *set);

/* Where a key came from, for messages: "FILE:LINE", or "FILE: --set SECTION.KEY=VALUE"
 * for a line recorded as -(i + 1). */
void mr_runcfg_where(const mr_run_config *c, int line, char *buf, size_t cap);

/* Write the resolved configuration as INI (every default made explicit), the same text
 * for the same settings: used for DIR/config.ini and the config hash. */
void mr_runcfg_write(const mr_run_config *c, FILE *fp);

/* FNV-1a hash of the resolved configuration (excluding `out`, which does not change
 * results). */
uint64_t mr_runcfg_hash(const mr_run_config *c);

#endif
