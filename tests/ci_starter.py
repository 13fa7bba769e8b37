#!/usr/bin/python3
"""The CI starter of examples/ci/ end to end (docs/ci.md), in a temporary clone.

    tests/ci_starter.py BUILD_DIR

- examples/ci/github-workflow.yml and gitlab-ci.yml parse, install and build in the
  same order, run the same moe-robust commands, and the GitHub workflow grants the
  JUnit reporter `checks: write`;
- those commands, run as written with OpenBLAS forced to kernel B, pass against the
  shipped examples/ci/baseline.json, and their JUnit file parses (one testcase per
  baseline metric, no failure);
- a baseline frozen from a run with OpenBLAS forced to kernel A passes the same run,
  and passes the kernel-B run under the default tolerance, although the two runs differ
  (a zero tolerance fails them): the default absorbs floating-point noise across BLAS
  kernels and vector widths (Haswell/AVX2 vs Sandybridge/AVX, or Sandybridge vs
  Prescott/SSE3 on a CPU without AVX2);
- a crafted regression (two baseline values moved) exits 1, names both metrics, and
  the JUnit file carries exactly those two failures.
"""

import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docs_runnable import make_clone, repo_files  # noqa: E402

fails = 0


def ok(msg):
    print("ok   " + msg)


def bad(msg):
    global fails
    fails += 1
    print("FAIL " + msg)


def expect(cond, msg):
    (ok if cond else bad)(msg)
    return cond


def kernels():
    """Two OpenBLAS kernels of different vector widths that this CPU can run."""
    flags = set()
    with open("/proc/cpuinfo") as fp:
        for line in fp:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "avx2" in flags:
        return "Haswell", "Sandybridge"
    if "avx" in flags:
        return "Sandybridge", "Prescott"
    return "Prescott", "Core2"


def sh(cmd, cwd, core=None, check_core=True):
    env = dict(os.environ)
    if core:
        env["OPENBLAS_CORETYPE"] = core
        env["OPENBLAS_VERBOSE"] = "2"
    r = subprocess.run(["sh", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out = r.stdout.decode(errors="replace")
    if core and check_core and "moe-robust " in cmd:
        # OpenBLAS prints "Core: NAME" for the kernel it uses ("Core not found: X"
        # and another name when it does not know the one asked for)
        expect(f"Core: {core}" in out and "Core not found" not in out,
               f"OpenBLAS ran kernel {core} for: {cmd[:60]}")
    return r.returncode, out


def workflow_commands(root):
    with open(os.path.join(root, "examples/ci/github-workflow.yml")) as fp:
        gh = yaml.safe_load(fp)
    with open(os.path.join(root, "examples/ci/gitlab-ci.yml")) as fp:
        gl = yaml.safe_load(fp)
    expect(gh.get("permissions", {}).get("checks") == "write",
           "GitHub workflow: permissions: checks: write (for the JUnit reporter)")
    steps = gh["jobs"]["gate"]["steps"]
    gh_run = [s["run"].strip() for s in steps if "run" in s]
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    expect(uses == ["actions/checkout", "mikepenz/action-junit-report", "actions/upload-artifact"],
           f"GitHub workflow: checkout, JUnit reporter, artifact upload ({uses})")
    junit = [s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report")]
    expect(junit and junit[0].get("with", {}).get("report_paths") == "check.xml"
           and junit[0].get("if") == "always()", "GitHub workflow: reports check.xml, always")
    job = gl["robustness-gate"]
    gl_run = [c.strip() for c in job["script"] + job.get("after_script", [])]
    expect(job.get("artifacts", {}).get("reports", {}).get("junit") == "check.xml"
           and job["artifacts"].get("when") == "always", "GitLab job: JUnit report check.xml, always")
    # the same installation and build, in this order, before the grid
    build = [c for c in gh_run if c.startswith("scripts/bootstrap") or c.startswith("cmake ")]
    expect(build == [c for c in gl_run if c.startswith("scripts/bootstrap") or c.startswith("cmake ")]
           and len(build) == 2 and build[0] == "scripts/bootstrap",
           f"GitHub and GitLab install (scripts/bootstrap) and build alike: {build}")
    mr_gh = [c for c in gh_run if c.startswith("build/moe-robust")]
    mr_gl = [c for c in gl_run if c.startswith("build/moe-robust")]
    expect(mr_gh == mr_gl and len(mr_gh) == 3, "GitHub and GitLab run the same moe-robust commands")
    for c in gh_run:
        expect(c.startswith(("scripts/bootstrap", "cmake ", "build/moe-robust", "apt-get ")),
               f"GitHub step is one the test knows: {c[:50]}")
    return mr_gh


def junit(path):
    """(tests, failures, [(classname, name) of failed testcases])."""
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    failed = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    return int(root.get("tests")), int(root.get("failures")), failed


def main():
    build_dir = os.path.abspath(sys.argv[1])
    src = os.getcwd()
    cmds = workflow_commands(src)
    a, b = kernels()
    print(f"kernels: baseline with {a}, runs checked with {b}")
    tmp, clone = make_clone(repo_files(), build_dir)
    try:
        # 1. the workflow's own commands, kernel B, against the shipped baseline
        for c in cmds:
            rc, out = sh(c, clone, b)
            if not expect(rc == 0, f"workflow command exits 0 with kernel {b}: {c}"):
                print(out[-3000:])
        base = json.load(open(os.path.join(clone, "examples/ci/baseline.json")))
        n_metrics = len(base["metrics"])
        tests, failures, _ = junit(os.path.join(clone, "check.xml"))
        expect(tests == n_metrics and failures == 0,
               f"JUnit of the workflow's check: {tests} testcases (baseline: {n_metrics}), {failures} failures")
        expect(os.path.exists(os.path.join(clone, "out/ci/report/report.md")), "the report step wrote out/ci/report")

        # 2. a baseline frozen with kernel A
        rc, out = sh(f"build/moe-robust run examples/ci/ci.ini --out out/ci-{a} --quiet", clone, a)
        expect(rc == 0, f"run with kernel {a}") or print(out[-3000:])
        rc, _ = sh(f"build/moe-robust baseline out/ci-{a} > base-{a}.json", clone, a)
        expect(rc == 0, "baseline of that run")
        rc, out = sh(f"build/moe-robust check out/ci-{a} --baseline base-{a}.json --junit same.xml", clone)
        expect(rc == 0 and " 0 regressed, 0 missing, 0 improved, 0 moved" in out,
               "the same run passes its own baseline, nothing moved") or print(out[-2000:])
        t, f, _ = junit(os.path.join(clone, "same.xml"))
        expect(t > 0 and f == 0, f"JUnit of the same run: {t} testcases, {f} failures")

        # 3. kernel B's run against kernel A's baseline: different numbers, default tolerance passes
        differ = subprocess.run(["cmp", "-s", f"out/ci-{a}/summary.csv", "out/ci/summary.csv"],
                                cwd=clone).returncode != 0
        expect(differ, f"{a} and {b} give different numbers (else this test proves nothing)")
        rc, out = sh(f"build/moe-robust check out/ci --baseline base-{a}.json", clone)
        expect(rc == 0, f"{b} run passes the {a} baseline under the default tolerance") or print(out[-3000:])
        moved = [l for l in out.splitlines() if l.startswith("moved")]
        expect(len(moved) > 0, f"... with metrics moved within tolerance ({len(moved)} listed)")
        with open(os.path.join(clone, "zero.json"), "w") as fp:
            fp.write('{"default": {"abs": 0}}')
        rc, out = sh(f"build/moe-robust check out/ci --baseline base-{a}.json --tolerance zero.json", clone)
        expect(rc == 1, f"with a zero tolerance the {b} run fails the {a} baseline (exit {rc})")

        # 4. a crafted regression: exit 1, both metrics named, JUnit has exactly them
        crafted = {"vit/softmax@k2/clean:accuracy": +0.02,
                   "vit/similarity@k2/gaussian_noise/s3:layer1/flip_top1": -0.05}
        for k, d in crafted.items():
            base["metrics"][k]["mean"] += d
        with open(os.path.join(clone, "crafted.json"), "w") as fp:
            json.dump(base, fp)
        rc, out = sh("build/moe-robust check out/ci --baseline crafted.json "
                     "--tolerance examples/ci/tolerance.json --junit crafted.xml", clone)
        expect(rc == 1, f"crafted regression: exit 1 (got {rc})")
        for k in crafted:
            expect(any(l.startswith("REGRESSION") and f" {k} " in l for l in out.splitlines()),
                   f"crafted regression named: {k}")
        t, f, failed = junit(os.path.join(clone, "crafted.xml"))
        want = sorted(tuple(k.split(":", 1)) for k in crafted)
        expect(t == n_metrics and f == 2 and sorted(failed) == want,
               f"JUnit: {t} testcases, failures {sorted(failed)}")
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
