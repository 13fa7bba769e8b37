/* The run configuration: defaults, every key, and errors that name the file and line. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "harness/mr_grid.h"
#include "harness/mr_runcfg.h"
#include "mr_test_util.h"

static char path[64];

static int load_text(mr_run_config *c, const char *text)
{
    strcpy(path, "/tmp/mr-cfg-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    int st = mr_runcfg_load(c, path);
    unlink(path);
    return st;
}

static int load_text_set(mr_run_config *c, const char *text, int n_set, char *const *set)
{
    strcpy(path, "/tmp/mr-cfg-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    int st = mr_runcfg_load_set(c, path, n_set, set);
    unlink(path);
    return st;
}

static void expect_error(const char *text, int line, const char *needle)
{
    mr_run_config c;
    ck_assert_int_eq(load_text(&c, text), MR_EINPUT);
    char where[96];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    ck_assert_msg(strstr(mr_error_message(), where), "expected line %d: %s", line, mr_error_message());
    ck_assert_msg(strstr(mr_error_message(), needle), "expected '%s': %s", needle, mr_error_message());
}

/* What `run` stores as DIR/config.ini (mr_runcfg_write), parsed again into *back. */
static void read_back(mr_run_config *back, const mr_run_config *c)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    mr_runcfg_write(c, fp);
    fclose(fp);
    ck_assert_msg(load_text(back, out) == MR_OK, "%s\n%s", mr_error_message(), out);
    free(out);
}

#define BASE "[data]\npath = d.h5\n[model m]\npath = m.h5\n"

START_TEST(full_config)
{
    mr_run_config c;
    const char *text = "# comment\n[run]\nseed = 7\nbootstrap = 200\nlevel = 0.9\nbatch = 8\n"
                       "limit = 100\nformats = h5, json\nreference = base\n" BASE
                       "checkpoint = a.h5\ncheckpoint = b.h5\n"
                       "[router base]\ntype = softmax\n[router sim]\ntype = similarity\ntau = 0.5\n"
                       "top_k = 1,2, 4-5\ncorruptions = no\n[router attention]\n"
                       "[corruptions]\nnames = image, embed_gaussian\nseverities = 1, 3-4\n";
    ck_assert_msg(load_text(&c, text) == MR_OK, "%s", mr_error_message());
    ck_assert_uint_eq(c.seed, 7);
    ck_assert_int_eq(c.bootstrap, 200);
    ck_assert_int_eq(c.batch, 8);
    ck_assert_int_eq(c.limit, 100);
    ck_assert_int_eq(c.formats, MR_OUT_JSON);
    ck_assert_int_eq(c.n_models, 1);
    ck_assert_int_eq(c.models[0].n_ckpt, 2);
    ck_assert_str_eq(c.models[0].ckpt[1], "b.h5");
    ck_assert_int_eq(c.n_routers, 3);
    ck_assert_str_eq(c.routers[2].type, "attention"); /* bare section: type = its name */
    ck_assert_int_eq(c.routers[1].n_k, 4);
    ck_assert_int_eq(c.routers[1].ks[3], 5);
    ck_assert_int_eq(c.routers[1].opts.n, 1);
    ck_assert(c.routers[1].no_corruptions && !c.routers[0].no_corruptions);
    ck_assert_str_eq(c.routers[1].opts.key[0], "tau");
    ck_assert_int_eq(c.n_corr_names, 2);
    ck_assert_int_eq(c.sev_mask, (1 << 1) | (1 << 3) | (1 << 4));
    /* the resolved text parses back to the same hash */
    char out[] = "/tmp/mr-cfg-resolved-XXXXXX";
    int fd = mkstemp(out);
    FILE *fp = fdopen(fd, "w");
    mr_runcfg_write(&c, fp);
    fclose(fp);
    mr_run_config d;
    ck_assert_msg(mr_runcfg_load(&d, out) == MR_OK, "%s", mr_error_message());
    ck_assert_uint_eq(mr_runcfg_hash(&c), mr_runcfg_hash(&d));
    d.seed = 8;
    ck_assert_uint_ne(mr_runcfg_hash(&c), mr_runcfg_hash(&d));
    unlink(out);
}
END_TEST

START_TEST(defaults)
{
    mr_run_config c;
    ck_assert_int_eq(load_text(&c, BASE "[router softmax]\n"), MR_OK);
    ck_assert_int_eq(c.bootstrap, 1000);
    ck_assert_double_eq(c.level, 0.95);
    ck_assert_int_eq(c.sev_mask, 0x3e);
    ck_assert_str_eq(c.reference, "softmax");
    ck_assert_int_eq(c.formats, MR_OUT_JSON | MR_OUT_CSV);
}
END_TEST

START_TEST(errors_name_the_line)
{
    expect_error(BASE "[router softmax]\n[run]\nfrobnicate = 1\n", 7, "unknown key 'frobnicate'");
    expect_error("[run]\nbootstrap = lots\n" BASE "[router softmax]\n", 2, "bootstrap = lots");
    expect_error("[run]\nlevel = 2\n" BASE "[router softmax]\n", 2, "level = 2");
    expect_error(BASE "[router softmax]\n[corruptions]\nseverities = 0-6\n", 7, "severities");
    expect_error(BASE "[router softmax]\n[corruptions]\nseverities = 2,9\n", 7, "'9'");
    expect_error(BASE "[router x]\ntype = nosuch\n", 6, "unknown router");
    expect_error(BASE "[router softmax]\ntop_k = 0\n", 6, "top_k");
    expect_error(BASE "[router softmax]\ncorruptions = maybe\n", 6, "corruptions = maybe");
    expect_error(BASE "[router softmax]\n[router softmax]\n", 6, "appears twice");
    /* inih merges repeated sections: a second [data] or [run] would silently override */
    expect_error(BASE "[router softmax]\n[data]\npath = e.h5\n", 6, "[data] appears twice (first at line 1)");
    expect_error("[run]\nseed = 1\n" BASE "[router softmax]\n[run]\n", 8, "[run] appears twice (first at line 1)");
    expect_error("seed = 1\n" BASE "[router softmax]\n", 1, "seed = 1 comes before any [section]");
    expect_error(BASE "[widgets]\n", 5, "unknown section [widgets]");
    expect_error(BASE "[router softmax]\nthis is not ini\n", 6, "not an INI line");
    expect_error(BASE "[model m2]\nfoo = 1\n", 6, "unknown key 'foo'");
    expect_error(BASE "[router bad name!]\n", 5, "names use letters");
    char longline[400] = "[run]\nout = ";
    memset(longline + strlen(longline), 'x', 300);
    strcat(longline, "\n" BASE "[router softmax]\n");
    expect_error(longline, 2, "longer than");
    /* a comment is not limited (DIR/config.ini's fingerprint lines hold absolute paths) */
    static mr_run_config c;
    char comments[2048] = "# ";
    memset(comments + 2, 'c', 600);
    strcat(comments, "\n[data]\n  ; ");
    memset(comments + strlen(comments), 'e', 300);
    strcat(comments, "\npath = d.h5\n[model m]\npath = m.h5\n[router softmax]\n");
    ck_assert_msg(load_text(&c, comments) == MR_OK, "%s", mr_error_message());
    ck_assert_str_eq(c.data, "d.h5");
    /* ... but a control character in one still is */
    comments[10] = 0x01;
    expect_error(comments, 1, "control character");
}
END_TEST

START_TEST(missing_parts)
{
    mr_run_config c;
    ck_assert_int_eq(load_text(&c, "[model m]\npath = m.h5\n[router softmax]\n"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "missing [data] path"));
    ck_assert_int_eq(load_text(&c, BASE), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "no [router NAME]"));
    ck_assert_int_eq(load_text(&c, "[data]\npath = d\n[model m]\n[router softmax]\n"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), ":3: [model m] has no path"));
    ck_assert_int_eq(load_text(&c, BASE "[router unknownrouter]\n"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "unknown router type 'unknownrouter'"));
    ck_assert_int_eq(mr_runcfg_load(&c, "/nonexistent/x.ini"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "/nonexistent/x.ini"));
}
END_TEST

/* DIR/config.ini (mr_runcfg_write) must read back as the same configuration: `merge`
 * parses it. Names listed over several lines and a "path=" line at the reader's limit
 * used to be written as lines longer than the reader accepts. */
START_TEST(resolved_config_reads_back)
{
    static mr_run_config c, back;
    char text[2048] = "[data]\npath=";
    size_t n = strlen("path=");
    memset(text + strlen(text), 'd', 198 - n); /* a line of exactly 198 characters */
    strcat(text, "\n[model m]\npath = m.h5\n[router softmax]\n[corruptions]\n");
    for (int line = 0; line < 3; line++)
        strcat(text, "names = gaussian_noise shot_noise impulse_noise speckle_noise gaussian_blur"
                     " glass_blur defocus_blur motion_blur\n");
    ck_assert_int_eq(load_text(&c, text), MR_OK);
    ck_assert_int_eq(c.n_corr_names, 24);
    read_back(&back, &c);
    ck_assert_int_eq(back.n_corr_names, 24);
    ck_assert_str_eq(back.data, c.data);
    ck_assert(mr_runcfg_hash(&back) == mr_runcfg_hash(&c));
}
END_TEST

/* [model] routers = ...: which router sections run on which model (e.g. a model trained
 * with the cosine router next to the baseline model); written back one per line. */
START_TEST(model_routers)
{
    static mr_run_config c, back;
    const char *text = "[data]\npath = d.h5\n[model base]\npath = a.h5\n"
                       "[model cos]\npath = b.h5\nrouters = cosine, cosine\n"
                       "[router softmax]\n[router sim]\ntype = similarity\n[router cosine]\n";
    ck_assert_msg(load_text(&c, text) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(c.models[1].n_sel, 1); /* named twice: once */
    for (int r = 0; r < 3; r++) ck_assert(mr_runcfg_model_runs(&c, 0, r));
    ck_assert(!mr_runcfg_model_runs(&c, 1, 0) && !mr_runcfg_model_runs(&c, 1, 1));
    ck_assert(mr_runcfg_model_runs(&c, 1, 2));
    read_back(&back, &c);
    ck_assert(mr_runcfg_hash(&back) == mr_runcfg_hash(&c));
    ck_assert(!mr_runcfg_model_runs(&back, 1, 0) && mr_runcfg_model_runs(&back, 1, 2));
    /* the selection changes the configuration */
    static mr_run_config all;
    ck_assert_int_eq(load_text(&all, "[data]\npath = d.h5\n[model base]\npath = a.h5\n"
                                     "[model cos]\npath = b.h5\n[router softmax]\n"
                                     "[router sim]\ntype = similarity\n[router cosine]\n"),
                     MR_OK);
    ck_assert(mr_runcfg_hash(&all) != mr_runcfg_hash(&c));

    expect_error("[data]\npath = d.h5\n[model m]\npath = m.h5\nrouters = sim\n[router softmax]\n",
                 5, "no [router sim] section");
    expect_error("[data]\npath = d.h5\n[model m]\npath = m.h5\nrouters = ,\n[router softmax]\n",
                 5, "routers: empty");
    expect_error("[data]\npath = d.h5\n[model m]\npath = m.h5\nrouters = a;b\n[router softmax]\n",
                 5, "not a router section name");
    /* the reference router must run on some model */
    mr_run_config bad;
    ck_assert_int_eq(load_text(&bad, "[run]\nreference = softmax\n[data]\npath = d.h5\n"
                                     "[model m]\npath = m.h5\nrouters = sim\n[router softmax]\n"
                                     "[router sim]\ntype = similarity\n"),
                     MR_EINPUT);
    ck_assert_msg(strstr(mr_error_message(), "no [model] runs that router"), "%s",
                  mr_error_message());
}
END_TEST

/* [model] compress = METHOD:K and [data] calib, calib_limit: parsed, written back, part of
 * the hash; a config without them keeps the text (and hash) it had before they existed. */
START_TEST(compress_keys)
{
    static mr_run_config c, back, plain;
    const char *text = "[data]\npath = d.h5\ncalib = train.h5\ncalib_limit = 64\n"
                       "[model base]\npath = a.h5\n[model m4]\npath = a.h5\n"
                       "compress = merge-msmoe:4\n[router softmax]\n";
    ck_assert_msg(load_text(&c, text) == MR_OK, "%s", mr_error_message());
    ck_assert_str_eq(c.calib, "train.h5");
    ck_assert_int_eq(c.calib_limit, 64);
    ck_assert_str_eq(c.models[0].compress, "");
    ck_assert_str_eq(c.models[1].compress, "merge-msmoe");
    ck_assert_int_eq(c.models[1].compress_k, 4);
    read_back(&back, &c);
    ck_assert_str_eq(back.models[1].compress, "merge-msmoe");
    ck_assert_int_eq(back.models[1].compress_k, 4);
    ck_assert_int_eq(back.calib_limit, 64);
    ck_assert(mr_runcfg_hash(&back) == mr_runcfg_hash(&c));
    /* K is part of the configuration */
    ck_assert_int_eq(load_text(&plain, "[data]\npath = d.h5\ncalib = train.h5\ncalib_limit = 64\n"
                                       "[model base]\npath = a.h5\n[model m4]\npath = a.h5\n"
                                       "compress = merge-msmoe:2\n[router softmax]\n"),
                     MR_OK);
    ck_assert(mr_runcfg_hash(&plain) != mr_runcfg_hash(&c));
    ck_assert_int_eq(load_text(&plain, "[data]\npath = d.h5\n[model base]\npath = a.h5\n"
                                       "[router softmax]\n"),
                     MR_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    mr_runcfg_write(&plain, fp);
    fclose(fp);
    ck_assert_ptr_null(strstr(buf, "calib"));
    ck_assert_ptr_null(strstr(buf, "compress"));
    free(buf);
    expect_error("[data]\npath = d.h5\n[model m]\npath = a.h5\ncompress = merge-msmoe:4\n"
                 "compress = prune-freq:2\n[router softmax]\n",
                 6, "compress given twice");
}
END_TEST

/* run --set: an override replaces every value of its key (repeatable keys start empty),
 * may add a section, and gives the same resolved config (and hash) as the edited file. */
START_TEST(set_overrides)
{
    static mr_run_config c, edited;
    const char *text = "[run]\nseed = 1\n" BASE "checkpoint = a.h5\ncheckpoint = b.h5\n"
                       "[router base]\ntype = softmax\n[router sim]\ntype = similarity\ntau = 0.5\n"
                       "[corruptions]\nnames = image\nnames = embed\nseverities = 1-5\n";
    char *set[] = {"run.seed=9", "router.sim.tau = 3", "model.m.checkpoint=x.h5",
                   "model.m.checkpoint=y.h5", "corruptions.names=fog, contrast",
                   "router.rnd.type=random", "router.sim.top_k=1,3", "corruptions.severities=2",
                   "data.path=other.h5", "run.limit=50"};
    int n = (int)(sizeof set / sizeof set[0]);
    ck_assert_msg(load_text_set(&c, text, n, set) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq((int)c.seed, 9);
    ck_assert_int_eq((int)c.limit, 50);
    ck_assert_str_eq(c.data, "other.h5");
    ck_assert_int_eq(c.models[0].n_ckpt, 2);
    ck_assert_str_eq(c.models[0].ckpt[0], "x.h5");
    ck_assert_str_eq(c.models[0].ckpt[1], "y.h5");
    ck_assert_int_eq(c.n_corr_names, 2);
    ck_assert_str_eq(c.corr_names[0], "fog");
    ck_assert_int_eq(c.sev_mask, 1 << 2);
    ck_assert_int_eq(c.n_routers, 3);
    ck_assert_str_eq(c.routers[2].name, "rnd");
    ck_assert_str_eq(c.routers[2].type, "random");
    ck_assert_int_eq(c.routers[1].opts.n, 1);
    ck_assert_str_eq(c.routers[1].opts.val[0], "3");
    ck_assert_int_eq(c.routers[1].n_k, 2);
    ck_assert_int_eq(c.n_set, n);
    const char *same = "[run]\nseed = 9\nlimit = 50\n[data]\npath = other.h5\n[model m]\npath = m.h5\n"
                       "checkpoint = x.h5\ncheckpoint = y.h5\n"
                       "[router base]\ntype = softmax\n[router sim]\ntype = similarity\ntau = 3\n"
                       "top_k = 1,3\n[router rnd]\ntype = random\n"
                       "[corruptions]\nnames = fog, contrast\nseverities = 2\n";
    ck_assert_msg(load_text(&edited, same) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_runcfg_hash(&c) == mr_runcfg_hash(&edited), "--set differs from the edited file");
    /* the resolved config (DIR/config.ini, read by merge) holds the overridden values */
    read_back(&edited, &c);
    ck_assert_msg(mr_runcfg_hash(&c) == mr_runcfg_hash(&edited), "resolved config does not read back");
}
END_TEST

/* Section names longer than inih's section buffer (49 characters): two models whose
 * names share their first 49 characters stay two sections, from a file and from --set,
 * and the resolved config reads back (fuzz_runcfg_set found "path given twice"). */
START_TEST(long_section_names)
{
    static mr_run_config c, back;
#define LONG_A "model_with_a_name_long_enough_to_pass_inih_section_limit_a"
#define LONG_B "model_with_a_name_long_enough_to_pass_inih_section_limit_b"
    const char *text = "[data]\npath = d.h5\n[model " LONG_A "]\npath = a.h5\n"
                       "[model " LONG_B "]\npath = b.h5\n[router " LONG_A "]\ntype = softmax\n"
                       "[router " LONG_B "]\ntype = similarity\ntau = 2\n";
    ck_assert_msg(load_text(&c, text) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(c.n_models, 2);
    ck_assert_str_eq(c.models[1].name, LONG_B);
    ck_assert_str_eq(c.models[0].path, "a.h5");
    ck_assert_str_eq(c.models[1].path, "b.h5");
    ck_assert_int_eq(c.routers[1].opts.n, 1);
    read_back(&back, &c);
    ck_assert_msg(mr_runcfg_hash(&c) == mr_runcfg_hash(&back), "resolved config does not read back");
    char *set[] = {"model." LONG_A "x.path=c.h5", "model." LONG_A "y.path=e.h5"};
    ck_assert_msg(load_text_set(&c, BASE "[router r]\ntype = softmax\n", 2, set) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(c.n_models, 3);
    ck_assert_str_eq(c.models[2].path, "e.h5");
    read_back(&back, &c);
    ck_assert_msg(mr_runcfg_hash(&c) == mr_runcfg_hash(&back), "resolved config does not read back");
#undef LONG_A
#undef LONG_B
}
END_TEST

/* A bad override is refused as the same line in the file would be, naming the file and
 * the override; malformed overrides name what a --set must look like. */
START_TEST(set_errors)
{
    static const struct {
        const char *set, *needle;
    } cases[] = {
        {"run.limit=abc", "limit = abc: not an integer"},
        {"run.limt=5", "unknown key 'limt' in [run]"},
        {"run.level=2", "level = 2: not a number in [0.5, 0.9999]"},
        {"foo.bar=1", "unknown section 'foo'"},
        {"limit=5", "expected SECTION.KEY=VALUE"},
        {"run.limit", "expected SECTION.KEY=VALUE"},
        {".limit=5", "expected SECTION.KEY=VALUE"},
        {"run.=5", "expected SECTION.KEY=VALUE"},
        {"model.=x", "expected SECTION.KEY=VALUE"},
        {"model..path=x", "'' is not a section name"},
        {"model.a/b.path=x", "'a/b' is not a section name"},
        {"corruptions.severities=7", "'7' is not a severity"},
        {"corruptions.colour=red", "unknown key 'colour' in [corruptions]"},
        {"router.x.type=nosuch", "type = nosuch: unknown router"},
        {"model.n.checkpoint=c.h5", "[model n] has no path"},
        {"run.out=a ;b", "';' after a blank"},
        {"run.out=a\tb\x01", "control character 0x01"},
        {"run.reference=nosuch", "reference = nosuch names no [router] section"},
        /* keys DIR/config.ini could not carry back (fuzz_runcfg_set found these: a
         * comment, a section line, inih's ':' delimiter) */
        {"router.sim.;p=1", "';p' is not a key name"},
        {"router.sim.[6=run", "'[6' is not a key name"},
        {"router.random.ty:pe=x", "'ty:pe' is not a key name"},
        {"router.sim.a b=1", "'a b' is not a key name"},
    };
    const char *text = "[run]\nseed = 1\n" BASE "[router base]\ntype = softmax\n"
                       "[router sim]\ntype = similarity\n[corruptions]\nnames = image\n";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static mr_run_config c;
        char *set[] = {(char *)cases[i].set};
        ck_assert_msg(load_text_set(&c, text, 1, set) == MR_EINPUT, "case %zu (%s) accepted", i,
                      cases[i].set);
        const char *msg = mr_error_message();
        ck_assert_msg(strstr(msg, path), "case %zu: no file in: %s", i, msg);
        ck_assert_msg(strstr(msg, cases[i].needle), "case %zu: expected '%s': %s", i,
                      cases[i].needle, msg);
        int names_set = strstr(msg, "--set ") != NULL;
        int whole = strstr(cases[i].needle, "reference") != NULL; /* a check across sections */
        ck_assert_msg(names_set || whole || strstr(cases[i].needle, "has no path"),
                      "case %zu: the override is not named: %s", i, msg);
    }
    /* too many */
    static char *many[MR_CFG_MAX_SET + 1];
    for (int i = 0; i <= MR_CFG_MAX_SET; i++) many[i] = "run.seed=1";
    static mr_run_config c;
    ck_assert_int_eq(load_text_set(&c, text, MR_CFG_MAX_SET + 1, many), MR_EINPUT);
    ck_assert_msg(strstr(mr_error_message(), "more than"), "%s", mr_error_message());
}
END_TEST

/* [attack]: methods, the eps ladder (grey levels), steps, transfer; written back only
 * when present (configs without attacks keep their hash), every bad value named. */
START_TEST(attack_keys)
{
    static mr_run_config c, back, plain;
    const char *text = BASE "[router softmax]\n[attack]\nmethods = pgd, square\n"
                            "eps = 2 8\nsteps = 7\ntransfer = yes\n";
    ck_assert_msg(load_text(&c, text) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(c.n_attacks, 2);
    ck_assert_str_eq(c.attacks[0], "pgd");
    ck_assert_str_eq(c.attacks[1], "square");
    ck_assert_int_eq(c.n_eps, 2);
    ck_assert_int_eq(c.eps[0], 2);
    ck_assert_int_eq(c.eps[1], 8);
    ck_assert_int_eq(c.attack_steps, 7);
    ck_assert_int_eq(c.transfer, 1);
    read_back(&back, &c);
    ck_assert_int_eq(back.n_attacks, 2);
    ck_assert_int_eq(back.n_eps, 2);
    ck_assert_int_eq(back.eps[1], 8);
    ck_assert_int_eq(back.attack_steps, 7);
    ck_assert_int_eq(back.transfer, 1);
    ck_assert(mr_runcfg_hash(&back) == mr_runcfg_hash(&c));
    /* defaults: the ladder 1 2 4 8 16, the methods' own steps, no transfer */
    ck_assert_int_eq(load_text(&plain, BASE "[router softmax]\n[attack]\nmethods = fgsm\n"), MR_OK);
    ck_assert_int_eq(plain.n_eps, 5);
    ck_assert_int_eq(plain.eps[4], 16);
    ck_assert_int_eq(plain.attack_steps, 0);
    ck_assert_int_eq(plain.transfer, 0);
    ck_assert(mr_runcfg_hash(&plain) != mr_runcfg_hash(&c));
    read_back(&back, &plain);
    ck_assert(mr_runcfg_hash(&back) == mr_runcfg_hash(&plain));
    /* without [attack]: nothing of it written */
    ck_assert_int_eq(load_text(&plain, BASE "[router softmax]\n"), MR_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    mr_runcfg_write(&plain, fp);
    fclose(fp);
    ck_assert_ptr_null(strstr(buf, "attack"));
    free(buf);
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd cw\n", 7, "unknown attack 'cw'");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd pgd\n", 7, "pgd is listed twice");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\neps = 8 4\n", 8, "must increase");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\neps = 0.03\n", 8, "grey levels");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\neps = 256\n", 8, "grey levels");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\nsteps = -1\n", 8, "steps = -1");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\ntransfer = maybe\n", 8, "yes or no");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\nradius = 3\n", 8, "unknown key 'radius'");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\n[attack]\n", 8, "[attack] appears twice");
    expect_error(BASE "[router softmax]\n[attack]\neps = 4\n", 6, "[attack] without methods");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\nobjective = flips\n", 8,
                 "unknown objective 'flips'");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\nobjective = loss loss\n", 8,
                 "loss is listed twice");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\nroute_layer = x\n", 8,
                 "route_layer = x");
    expect_error(BASE "[router softmax]\n[attack]\nmethods = pgd\nroute_layer = 1\n", 8,
                 "only the routing objective");
}
END_TEST

/* [attack] objective (loss, routing or both) and route_layer: read, written back only
 * when not the default (configs without them keep their text and hash). */
START_TEST(attack_objective_keys)
{
    static mr_run_config c, back, plain;
    const char *text = BASE "[router softmax]\n[attack]\nmethods = pgd\n"
                            "objective = routing, loss\nroute_layer = 3\n";
    ck_assert_msg(load_text(&c, text) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(c.n_objectives, 2);
    ck_assert_int_eq(c.objectives[0], MR_ATTACK_ROUTING);
    ck_assert_int_eq(c.objectives[1], MR_ATTACK_LOSS);
    ck_assert_int_eq(c.route_layer, 3);
    read_back(&back, &c);
    ck_assert_int_eq(back.n_objectives, 2);
    ck_assert_int_eq(back.objectives[0], MR_ATTACK_ROUTING);
    ck_assert_int_eq(back.route_layer, 3);
    ck_assert(mr_runcfg_hash(&back) == mr_runcfg_hash(&c));
    /* the default (loss, the first MoE block) is not written: the hash of a config
     * without the keys is unchanged */
    ck_assert_int_eq(load_text(&plain, BASE "[router softmax]\n[attack]\nmethods = pgd\n"),
                     MR_OK);
    ck_assert_int_eq(plain.n_objectives, 1);
    ck_assert_int_eq(plain.objectives[0], MR_ATTACK_LOSS);
    ck_assert_int_eq(plain.route_layer, -1);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    mr_runcfg_write(&plain, fp);
    fclose(fp);
    ck_assert_ptr_null(strstr(buf, "objective"));
    ck_assert_ptr_null(strstr(buf, "route_layer"));
    free(buf);
    ck_assert(mr_runcfg_hash(&plain) != mr_runcfg_hash(&c));
}
END_TEST

/* Every shipped example config parses and passes the grid's checks (its model, checkpoint
 * and data files exist and load, every router runs on every model it names): examples
 * that users copy must not rot as models and keys change. */
START_TEST(shipped_examples_are_valid)
{
    glob_t gl;
    ck_assert_int_eq(glob("examples/*.ini", 0, NULL, &gl), 0);
    ck_assert_int_eq(glob("examples/*/*.ini", GLOB_APPEND, NULL, &gl), 0);
    ck_assert_uint_ge(gl.gl_pathc, 4);
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        static mr_run_config c;
        ck_assert_msg(mr_runcfg_load(&c, gl.gl_pathv[i]) == MR_OK, "%s", mr_error_message());
        mr_grid g;
        ck_assert_msg(mr_grid_build(&g, &c) == MR_OK, "%s", mr_error_message());
        ck_assert_int_gt(g.n_cells, 0);
        mr_grid_free(&g);
    }
    globfree(&gl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runcfg");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, full_config);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, errors_name_the_line);
    tcase_add_test(tc, missing_parts);
    tcase_add_test(tc, resolved_config_reads_back);
    tcase_add_test(tc, model_routers);
    tcase_add_test(tc, compress_keys);
    tcase_add_test(tc, set_overrides);
    tcase_add_test(tc, set_errors);
    tcase_add_test(tc, long_section_names);
    tcase_add_test(tc, attack_keys);
    tcase_add_test(tc, attack_objective_keys);
    suite_add_tcase(s, tc);
    /* loads every shipped model and data set: seconds, more under the sanitizers */
    TCase *ex = tcase_create("examples");
    tcase_set_timeout(ex, 120);
    tcase_add_test(ex, shipped_examples_are_valid);
    suite_add_tcase(s, ex);
    return mr_test_run(s);
}
