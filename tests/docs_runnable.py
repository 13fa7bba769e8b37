#!/usr/bin/python3
"""Documentation that cannot rot (docs/testing.md, "Runnable documentation").

    tests/docs_runnable.py BUILD_DIR [FILE.md ...]

1. Every fenced block whose info string holds the word `runnable` (```sh runnable)
   in a Markdown file of the repository (README.md, docs/*.md, and every other
   tracked *.md) is run as written, with `sh -e` (`bash -e` for ```bash,
   /usr/bin/python3 for ```python),
   from the root of a temporary clone (under BUILD_DIR/Testing/tmp, never /tmp,
   which CI runners may mount noexec): the repository's tracked and untracked,
   not ignored files (what a `git clone` of the working tree would hold), with
   `build` a link to BUILD_DIR, the build under test, as after scripts/build.
   The blocks of one file run in order in one clone, each from the clone's
   root; another file gets a fresh clone. A block passes when it exits 0 within
   its time limit (`timeout=SECONDS` in the info string, default 1200: a limit
   for hangs, not a speed test; the machine may be shared).
2. In every sh/bash/console block, runnable or not, a path into the
   repository's own folders (examples/, docs/, models/, tools/, scripts/,
   tests/, bench/, .ci/ ...) must exist, and no argument may be a bare `...`
   placeholder.

Prints one line per block; exit 0 when all pass, 1 otherwise.
"""

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.getcwd()
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^`]*)$")
SHELLS = {"sh": ["sh", "-e", "-c"], "shell": ["sh", "-e", "-c"], "bash": ["bash", "-e", "-c"],
          "python": ["/usr/bin/python3", "-c"]}
CHECKED = {"sh", "shell", "bash", "console"}
DEFAULT_TIMEOUT = 1200


def repo_files():
    """Tracked and untracked-but-not-ignored files of the working tree."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        # not a git checkout (a source tarball): every file outside build and output folders
        files = []
        for d, dirs, names in os.walk(ROOT):
            rel = os.path.relpath(d, ROOT)
            dirs[:] = [x for x in dirs if not (rel == "." and (x.startswith("build") or x in (".git", "out")))]
            files += [os.path.normpath(os.path.join(rel, n)) for n in names]
    return sorted(f for f in files if os.path.lexists(os.path.join(ROOT, f)))


def blocks(path):
    """(line, info words, text) of every fenced block of a Markdown file."""
    out, cur = [], None
    with open(os.path.join(ROOT, path), encoding="utf-8") as fp:
        for no, line in enumerate(fp, 1):
            m = FENCE.match(line.rstrip("\n"))
            if cur is None:
                if m:
                    cur = (no, m.group(2), m.group(3).split(), [], len(m.group(1)))
            elif m and m.group(2).startswith(cur[1]) and not m.group(3).strip():
                out.append((cur[0], cur[2], "".join(cur[3])))
                cur = None
            else:
                # strip the fence's own indentation (a block inside a list item)
                cur[3].append(line[cur[4]:] if line[:cur[4]].strip() == "" else line)
    return out


def scratch_dir(build_dir):
    """Where clones go: under the build directory, not /tmp. A CI runner's /tmp is often
    a tmpfs mounted noexec (Docker's --tmpfs default), and blocks compile and run
    programs in their clone (docs/install.md): the build directory is known to allow
    running what is built there."""
    d = os.path.join(build_dir, "Testing", "tmp")
    os.makedirs(d, exist_ok=True)
    return d


def make_clone(files, build_dir):
    tmp = tempfile.mkdtemp(prefix="mr-docs-", dir=scratch_dir(build_dir))
    clone = os.path.join(tmp, "repo")
    os.mkdir(clone)
    for f in files:
        src, dst = os.path.join(ROOT, f), os.path.join(clone, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    if os.path.lexists(os.path.join(clone, "build")):
        raise SystemExit("docs_runnable: the repository tracks a file named build")
    os.symlink(build_dir, os.path.join(clone, "build"))
    return tmp, clone


# A path into one of the repository's folders, as a word of a command line.
REPO_DIRS = ("examples", "docs", "models", "tools", "scripts", "tests", "bench", ".ci",
             "analysis", "corruptions", "metrics", "harness", "io", "reports")
PATH_RE = re.compile(r"^(?:\./)?(" + "|".join(re.escape(d) for d in REPO_DIRS) + r")/[^\s]*$")


def words(text):
    """Shell words of a block, comments and line continuations removed."""
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("$ "):  # console transcripts
            line = line[2:]
        try:
            out += shlex.split(line, comments=True)
        except ValueError:
            out += line.split()
    return out


def lint(path, no, text, files):
    """Problems of a non-runnable (or runnable) shell block: missing paths, placeholders."""
    problems = []
    known = set(files)
    dirs = {os.path.dirname(f) for f in files}
    while any(d and os.path.dirname(d) not in dirs for d in dirs):
        dirs |= {os.path.dirname(d) for d in dirs}
    for w in words(text):
        for part in re.split(r"[=:,]", w):
            part = part.rstrip(";|&)")
            if part == "...":
                problems.append(f"{path}:{no}: '...' placeholder in a command: write the real arguments")
                continue
            if not PATH_RE.match(part) or "$" in part or "<" in part or part.endswith("..."):
                continue
            p = os.path.normpath(part)
            if any(ch in p for ch in "*?[{"):
                pat = re.sub(r"\{[^}]*\}", "*", p)
                ok = any(glob.fnmatch.fnmatch(f, pat) for f in known)
            else:
                ok = p in known or p in dirs
            if not ok:
                problems.append(f"{path}:{no}: '{part}' is not in the repository")
    return problems


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    build_dir = os.path.abspath(sys.argv[1])
    files = repo_files()
    mds = sys.argv[2:] or [f for f in files if f.endswith(".md")]
    fail, n_run, t_all = 0, 0, time.time()
    for md in mds:
        bl = blocks(md)
        for no, info, text in bl:
            lang = info[0] if info else ""
            if lang in CHECKED:
                for p in lint(md, no, text, files):
                    print("FAIL " + p)
                    fail = 1
        todo = [(no, info, text) for no, info, text in bl if "runnable" in info[1:]]
        if not todo:
            continue
        tmp, clone = make_clone(files, build_dir)
        try:
            for no, info, text in todo:
                where = f"{md}:{no}"
                shell = SHELLS.get(info[0])
                if not shell:
                    print(f"FAIL {where}: runnable block of type '{info[0]}' (use sh, bash or python)")
                    fail = 1
                    continue
                limit = DEFAULT_TIMEOUT
                for w in info[1:]:
                    if w.startswith("timeout="):
                        limit = int(w.split("=", 1)[1])
                t0 = time.time()
                try:
                    r = subprocess.run(shell + [text], cwd=clone, timeout=limit,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
                    rc, out = r.returncode, r.stdout.decode(errors="replace")
                except subprocess.TimeoutExpired as e:
                    rc, out = f"none: killed at the {limit} s limit", (e.stdout or b"").decode(errors="replace")
                n_run += 1
                dt = time.time() - t0
                if rc == 0:
                    print(f"ok   {where} ({dt:.1f} s)")
                else:
                    fail = 1
                    print(f"FAIL {where}: exit {rc} after {dt:.1f} s; the block:")
                    print("  | " + text.rstrip().replace("\n", "\n  | "))
                    tail = out.rstrip().splitlines()[-30:]
                    print("  output (last 30 lines):\n  > " + "\n  > ".join(tail))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if n_run == 0 and not sys.argv[2:]:
        print("FAIL no runnable block found: the marker is ```sh runnable (docs/testing.md)")
        fail = 1
    print(f"docs_runnable: {n_run} runnable blocks in {time.time() - t_all:.0f} s")
    return fail


if __name__ == "__main__":
    sys.exit(main())
