#!/usr/bin/python3
"""Layout rules of the report's figures (docs/reports.md "Figures"), checked on the
scripts and data a report wrote:

  report_figures.py rules REPORT_DIR
      every fig-*.gp: panel titles in the panels' top margin (the helper's tmargin, never
      offset down onto the plot); >= 7 pt text in the PDF terminal and every font it sets;
      keys below, outside or in the key strip, never inside a plot; no degenerate
      figure: accuracy vs k has a curve with two k or more, co-activation is never of a
      k = 1 group (the identity); an axis cut (saturation) has its
      break marks; collapsed routers on a right axis only where a group is marked so.
  report_figures.py collapsed REPORT_DIR FIG LABEL
      fig FIG.gp draws the router@k LABEL (collapsed) on the right y axis, in a band of its
      own: every value of its blocks in FIG.dat lies in the y2 range's band, every other
      group's in the left axis's band, the two bands apart; its key label says so.
  report_figures.py one-axis REPORT_DIR
      no figure has a right axis (a run without a collapsed router).
"""
import glob
import math
import os
import re
import sys

TMARGIN = 2.0  # reports/mr_report_impl.h MR_REP_TMARGIN
MIN_PT = 7


def fail(msg):
    print(f"FAIL {msg}")
    return 1


def blocks(dat):
    """the data blocks of a .dat (separated by two blank lines): lists of float rows"""
    out, cur, blank = [], [], 0
    for line in open(dat):
        s = line.strip()
        if not s:
            blank += 1
            continue
        if s.startswith("#"):
            continue
        if blank >= 2 and cur:
            out.append(cur)
            cur = []
        blank = 0
        cur.append([float(x) for x in s.split()])
    if cur:
        out.append(cur)
    return out


def rules(d):
    bad = 0
    gps = sorted(glob.glob(os.path.join(d, "fig-*.gp")))
    if not gps:
        return fail(f"{d}: no figure scripts")
    for gp in gps:
        name = os.path.basename(gp)
        text = open(gp).read()
        lines = text.splitlines()
        # titles: never offset down into the plot; panels use the title margin
        for ln in lines:
            m = re.search(r"set title .*offset\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)", ln)
            if m and float(m.group(2)) < 0:
                bad |= fail(f"{name}: a title offset down onto its plot: {ln.strip()}")
        if "eval panel(" in text and re.search(r"^\s*set title", text, re.M):
            # the top margin in effect where the panels are drawn
            head = text[:text.index("eval panel(")]
            tm = [float(x) for x in re.findall(r"^set tmargin ([\d.]+)", head, re.M)]
            if not tm or tm[-1] < TMARGIN:
                bad |= fail(f"{name}: panel titles without a top margin of {TMARGIN} ({tm[-1:]})")
        # text sizes in the PDF terminal and in every font set
        m = re.search(r'pdfcairo .*font "[^",]*,(\d+(?:\.\d+)?)"', text)
        if not m or float(m.group(1)) < MIN_PT:
            bad |= fail(f"{name}: PDF font under {MIN_PT} pt")
        for size in re.findall(r'font \\?"[^",]*,(\d+(?:\.\d+)?)\\?"', text):
            if float(size) < MIN_PT:
                bad |= fail(f"{name}: a {size} pt font")
        for size in re.findall(r'fmt eq "pdf" \? ",(\d+)"', text):
            if float(size) < MIN_PT:
                bad |= fail(f"{name}: {size} pt values in the PDF")
        # keys: below, outside, at a screen position or centred in the key strip
        for ln in lines:
            s = ln.strip()
            if s.startswith("set key") and not re.search(r"below|outside|at screen|center center", s):
                bad |= fail(f"{name}: a key inside the plot: {s}")
        # an axis that does not start at 0 is marked cut, with its break marks
        if "axis cut" in text and "set arrow 93" not in text:
            bad |= fail(f"{name}: a cut axis without break marks")
        # a right axis only for collapsed groups, and then with both bands' ticks
        if "axes x1y2" in text:
            m = re.search(r"^array right\[\d+\] = \[([01, ]+)\]", text, re.M)
            if not m or "1" not in m.group(1):
                bad |= fail(f"{name}: a right axis without a collapsed group")
            if not re.search(r"^set y2tics [-\d.e]+, [\d.e]+, [-\d.e]+", text, re.M):
                bad |= fail(f"{name}: a right axis without its band's ticks")
        # co-activation at k = 1 is the identity: never drawn for a k = 1 group
        if name.endswith("-coact.gp") and re.search(r"@k1$", open(gp[:-3] + ".dat").readline().strip()):
            bad |= fail(f"{name}: co-activation of a k = 1 group (the identity)")
        # accuracy vs k: drawn only when some curve has two k or more
        if name.endswith("-k.gp"):
            if max(len(b) for b in blocks(gp[:-3] + ".dat")) < 2:
                bad |= fail(f"{name}: every curve has a single k")
    if not bad:
        print(f"ok   {d}: {len(gps)} figure scripts follow the layout rules")
    return bad


def y_ranges(text):
    def rng(axis):
        m = re.findall(rf"^set {axis}range \[([-\d.e+]+):([-\d.e+]+)\]", text, re.M)
        return tuple(map(float, m[-1])) if m else None  # the last one set wins
    return rng("y"), rng("y2")


def collapsed(d, fig, label):
    gp = os.path.join(d, fig + ".gp")
    text = open(gp).read()
    labels = re.search(r"^array label\[\d+\] = \[(.*)\]$", text, re.M).group(1)
    labels = re.findall(r'"((?:[^"\\]|\\.)*)"', labels)
    right = re.search(r"^array right\[\d+\] = \[([01, ]+)\]", text, re.M)
    if not right:
        return fail(f"{fig}: no right axis for the collapsed {label}")
    right = [int(x) for x in right.group(1).split(",")]
    if label not in labels or [labels[i] for i, r in enumerate(right) if r] != [label]:
        return fail(f"{fig}: right axis groups {right} for labels {labels}, want {label} only")
    g = labels.index(label) + 1
    if f'label[{g}] = label[{g}] . " (right axis)"' not in text:
        return fail(f"{fig}: the key does not say that {label} is on the right axis")
    if "axes x1y2" not in text or "alt(" not in text or "main(" not in text:
        return fail(f"{fig}: the plot does not split the groups between the axes")
    (ylo, yhi), (y2lo, y2hi) = y_ranges(text)
    G = len(labels)
    vals = {True: [], False: []}
    for b, rows in enumerate(blocks(os.path.join(d, fig + ".dat"))):
        # blocks: panel-major, G groups per panel (the data header says so)
        coll = b % G == g - 1
        for r in rows:
            vals[coll] += [v for v in r[1:] if math.isfinite(v)]
    if not vals[True] or not vals[False]:
        return fail(f"{fig}: no data for the collapsed or the other groups")
    # plot-height fractions of each group's values on its own axis
    fc = [(v - y2lo) / (y2hi - y2lo) for v in vals[True]]
    fo = [(v - ylo) / (yhi - ylo) for v in vals[False]]
    if min(fc) < 0 or max(fc) > 1 or min(fo) < 0 or max(fo) > 1:
        return fail(f"{fig}: values outside their axis range ({min(fc):.3f}..{max(fc):.3f}, "
                    f"{min(fo):.3f}..{max(fo):.3f})")
    if not (min(fc) > max(fo) or max(fc) < min(fo)):
        return fail(f"{fig}: the bands overlap: collapsed {min(fc):.3f}..{max(fc):.3f}, "
                    f"others {min(fo):.3f}..{max(fo):.3f} of the plot height")
    # the others keep their scale: their values span most of their band (the left axis
    # is not stretched to reach the collapsed router)
    if max(fo) - min(fo) < 0.5:
        return fail(f"{fig}: the other routers are squashed into {max(fo) - min(fo):.2f} of the plot")
    print(f"ok   {fig}: {label} on the right axis, band {min(fc):.2f}..{max(fc):.2f} of the "
          f"height; the others {min(fo):.2f}..{max(fo):.2f} on the left")
    return 0


def one_axis(d):
    bad = 0
    for gp in sorted(glob.glob(os.path.join(d, "fig-*.gp"))):
        if "axes x1y2" in open(gp).read():
            bad |= fail(f"{os.path.basename(gp)}: a right axis without a collapsed router")
    if not bad:
        print(f"ok   {d}: no right axis without a collapsed router")
    return bad


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "rules" and len(sys.argv) == 3:
        sys.exit(rules(sys.argv[2]))
    if cmd == "collapsed" and len(sys.argv) == 5:
        sys.exit(collapsed(*sys.argv[2:]))
    if cmd == "one-axis" and len(sys.argv) == 3:
        sys.exit(one_axis(sys.argv[2]))
    sys.exit(__doc__)
