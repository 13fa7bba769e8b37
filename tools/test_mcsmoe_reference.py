#!/usr/bin/python3
"""The M-SMoE reference values against the authors' code (UNITES-Lab/MC-SMoE).

    MCSMOE_REPO=PATH /usr/bin/python3 tools/test_mcsmoe_reference.py

tests/test_compress_ref.c (ctest, every build) checks `moe-robust compress --method
merge-msmoe` against tests/fixtures/mcsmoe-ref-fmnist.h5, which tools/make_mcsmoe_ref.py
computes with an implementation of its own that follows the authors' algorithm. This
script closes the loop where a mirror of the authors' repository is available: it
checks that file against the authors' code itself. It is a tool, not a ctest test (CI
has no network to fetch their repository). PATH is a checkout or a git mirror (bare
repository) of https://github.com/UNITES-Lab/MC-SMoE; without one, or without
PyTorch/SciPy, it prints SKIPPED and exits 77. Nothing of the authors' code is stored
in this repository: three of its files are read from PATH into a temporary directory
at run time.

On the shipped Fashion-MNIST model (models/fmnist-vit-moe-softmax.h5) and the
calibration batch of the fixture (the first 256 images of the Fashion-MNIST training
set, as `moe-robust compress` uses), for K = 6, 4, 2:

1. the PyTorch reference model (tools/moe_model.py) computes each MoE block's
   router logits on the batch, and the authors' ExpertsGrouperForMixtral
   (mcsmoe/merging/grouping_mixtral.py: compute_all_usages,
   compute_all_similarities with similarity_base="router-logits",
   group_experts_globally_from_dominant_experts with the block as the only
   merged layer, i.e. the K most used experts dominant) groups the experts;
2. each member is aligned to its dominant expert with the authors'
   compute_switch_permutation_by_weight_matching(include_wo=True) and
   permute_switch_mlp_dense_expert_ (mcsmoe/merging/permutation.py), and the
   groups are merged with their _merge_mlp_experts_by_usage_frequency_weighting.

It requires the fixture's groups and dominant experts in every block, and merged
tensors equal to max |fixture - authors'| <= 1e-5 max |authors'| per tensor. Our
experts have biases, theirs none: b1 enters the authors' matching and merge as one
more input column of W1 (it is permuted with its neuron), b2 as one more column of W2
(merged, never permuted). The Switch pipeline of their README aligns every expert to
expert 0 before grouping (permute-model.py), where the issue and moe-robust align each
member to its dominant; the script prints how far the merged experts' outputs on the
calibration tokens move under that alternative. docs/compression.md records a run.
"""

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import types

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
SKIP = 77
MODEL = "models/fmnist-vit-moe-softmax.h5"
FIXTURE = "tests/fixtures/mcsmoe-ref-fmnist.h5"
CALIB = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
N_CALIB = 256
FILES = ["mcsmoe/utils/constants.py", "mcsmoe/merging/permutation.py",
         "mcsmoe/merging/grouping_mixtral.py"]


def skip(msg):
    print(f"SKIPPED: {msg}")
    sys.exit(SKIP)


def fetch_sources(repo, dest):
    """Copy FILES from a checkout or a git directory into dest."""
    for rel in FILES:
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if os.path.isfile(os.path.join(repo, rel)):
            shutil.copy(os.path.join(repo, rel), out)
            continue
        r = subprocess.run(["git", "--git-dir", repo, "show", f"HEAD:{rel}"],
                           capture_output=True)
        if r.returncode != 0:
            skip(f"{repo} is neither a checkout nor a git mirror of UNITES-Lab/MC-SMoE "
                 f"(no {rel})")
        with open(out, "wb") as f:
            f.write(r.stdout)


class _Stub(types.ModuleType):
    """A module whose every attribute is a placeholder class (type names only)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (), {})
        setattr(self, name, cls)
        return cls


def import_reference(src):
    """The authors' modules, imported without their package __init__ files (which
    pull in training code) and with Hugging Face transformers stubbed: the functions
    used here only read tensors. tqdm is stubbed when absent."""
    for name in ["transformers", "transformers.models", "transformers.modeling_outputs",
                 "transformers.models.mixtral", "transformers.models.mixtral.modeling_mixtral",
                 "transformers.models.switch_transformers",
                 "transformers.models.switch_transformers.modeling_switch_transformers",
                 "mcsmoe.models", "mcsmoe.models.fsgpt_moe"]:
        sys.modules.setdefault(name, _Stub(name))
    try:
        import tqdm  # noqa: F401
    except ImportError:
        t = types.ModuleType("tqdm")
        t.tqdm = lambda it=None, *a, **k: it if it is not None else _NullBar()
        sys.modules["tqdm"] = t
    for pkg in ["mcsmoe", "mcsmoe.utils", "mcsmoe.merging"]:
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(src, *pkg.split("."))]
        sys.modules[pkg] = m
    perm = importlib.import_module("mcsmoe.merging.permutation")
    grp = importlib.import_module("mcsmoe.merging.grouping_mixtral")
    return perm, grp


class _NullBar:
    def update(self, *a):
        pass


def fixture_block(h, L, K, moe, np):
    """The fixture's groups of block L at K ([dominant, members...] by dominant index)
    and every new expert's tensors (a group of one: the expert itself)."""
    g = h[f"block{L}/K{K}"]
    dom = [int(x) for x in g["dominant"][()]]
    grp = g["group"][()]
    ours = [[d] + [e for e in range(len(grp)) if grp[e] == i and e != d] for i, d in enumerate(dom)]
    src = {"w1": moe.w1, "b1": moe.b1, "w2": moe.w2, "b2": moe.b2}
    tensors = {n: np.stack([src[n][d].detach().numpy() for d in dom]) for n in src}
    for j, i in enumerate(g["merged"][()]):
        for n in src:
            tensors[n][i] = g[n][j]
    return ours, tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=os.environ.get("MCSMOE_REPO"))
    args = ap.parse_args()
    if not args.repo:
        skip("set MCSMOE_REPO (or --repo) to a checkout or git mirror of "
             "https://github.com/UNITES-Lab/MC-SMoE to compare with the authors' code")
    if not os.path.exists(args.repo):
        skip(f"MCSMOE_REPO={args.repo} does not exist")
    try:
        import numpy as np
        import torch
        import torch.nn as nn
        import scipy.optimize  # noqa: F401  (the authors' linear_sum_assignment)
        import h5py
    except ImportError as e:
        skip(f"needs PyTorch, SciPy and h5py (scripts/bootstrap --tools): {e}")
    if not os.path.exists(CALIB):
        skip(f"{CALIB} missing (Debian package dataset-fashion-mnist)")
    sys.path.insert(0, TOOLS)
    from h5export import load_model
    from data import load_eval_data

    torch.set_num_threads(1)
    # the authors' code moves tensors to CUDA; the CPU is enough here
    torch.Tensor.cuda = lambda self, *a, **k: self
    tmp = tempfile.mkdtemp(prefix="mr-mcsmoe-")
    try:
        fetch_sources(args.repo, tmp)
        perm_mod, grp_mod = import_reference(tmp)
        model, attrs = load_model(os.path.join(ROOT, MODEL), dtype=torch.float32)
        _, images, _ = load_eval_data(CALIB)
        with torch.no_grad():
            _, routes = model(torch.from_numpy(np.ascontiguousarray(images[:N_CALIB])))
        E, d, h_ = attrs["n_experts"], attrs["d_model"], attrs["expert_hidden"]
        blocks = {r["layer"]: r for r in routes}
        moe = {L: blk.moe for L, blk in enumerate(model.blocks) if blk.is_moe}
        failures = 0
        with h5py.File(os.path.join(ROOT, FIXTURE), "r") as h:
            for K in (6, 4, 2):
                for L in sorted(moe):
                    ours, tensors = fixture_block(h, L, K, moe[L], np)
                    failures += compare_block(K, L, blocks[L], moe[L], ours, tensors, E, d, h_,
                                              perm_mod, grp_mod, np, torch, nn)
        print("FAILED" if failures else "PASSED", f"({failures} mismatches)")
        return 1 if failures else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_block(K, L, route, moe, ours, tensors, E, d, h, perm_mod, grp_mod, np, torch, nn):
    from types import SimpleNamespace as NS
    x = route["moe_input"].reshape(-1, d)
    logits = torch.nn.functional.linear(x, moe.router.gate.weight, moe.router.gate.bias)

    class RouterModel:  # what the grouper calls: router logits of the one merged layer
        config = NS(num_hidden_layers=1)

        def eval(self):
            return self

        def __call__(self, **batch):
            return NS(router_logits=(logits,))

    grouper = grp_mod.ExpertsGrouperForMixtral(
        NS(num_local_experts=E, hidden_size=d, num_hidden_layers=1),
        similarity_base="router-logits")
    loader = [{"input_ids": torch.zeros(1)}]
    grouper.compute_all_similarities(RouterModel(), loader)
    grouper.compute_all_usages(RouterModel(), loader)
    dom = grouper.group_experts_globally_from_dominant_experts(
        num_average_groups=K, merging_layers=[0])
    name = "model.layers.0.block_sparse_moe"
    dom = dom[name]
    labels = grouper.group_state_dict()[name]
    freq = grouper.usage_frequency_state_dict()[name]
    ref_groups = sorted(sorted(int(e) for e in range(E) if labels[e] == g) for g in range(len(dom)))
    our_groups = sorted(sorted(g) for g in ours)
    tag = f"K={K} block {L}"
    bad = 0
    if ref_groups != our_groups or sorted(dom) != sorted(g[0] for g in ours):
        print(f"FAIL {tag}: groups {our_groups} (dominant {[g[0] for g in ours]}), "
              f"authors' {ref_groups} (dominant {dom})")
        return 1
    print(f"ok   {tag}: groups {[g for g in ours]} (dominant first, the fixture) = the authors'")

    def mlp(e, w1=None, b1=None, w2=None):
        wi = nn.Linear(d + 1, h, bias=False)
        wo = nn.Linear(h, d, bias=False)
        with torch.no_grad():
            wi.weight.copy_(torch.cat([moe.w1[e] if w1 is None else w1,
                                       (moe.b1[e] if b1 is None else b1)[:, None]], dim=1))
            wo.weight.copy_(moe.w2[e] if w2 is None else w2)
        return NS(wi=wi, wo=wo)

    def merged(align_to):
        """The authors' merge of our groups, each member aligned to align_to(group)."""
        experts = []
        for e in range(E):
            m = mlp(e)
            g = [grp for grp in ours if e in grp][0]
            ref = align_to(g)
            if e != ref:
                p = perm_mod.compute_switch_permutation_by_weight_matching(mlp(ref), m, include_wo=True)
                m = perm_mod.permute_switch_mlp_dense_expert_(m, p)
            w1 = nn.Linear(d + 1, h, bias=False)
            w2 = nn.Linear(h + 1, d, bias=False)
            w3 = nn.Linear(1, 1, bias=False)
            with torch.no_grad():
                w1.weight.copy_(m.wi.weight)
                w2.weight.copy_(torch.cat([m.wo.weight, moe.b2[e][:, None]], dim=1))
            experts.append(NS(w1=w1, w2=w2, w3=w3))
        ffn = grp_mod._merge_mlp_experts_by_usage_frequency_weighting(
            NS(experts=experts), labels, freq)
        res = {}
        for gi, g in enumerate(ours):
            ex = ffn.experts[min(g)]  # the authors keep the merged expert in the lowest slot
            res[gi] = {"w1": ex.w1.weight[:, :d], "b1": ex.w1.weight[:, d],
                       "w2": ex.w2.weight[:, :h], "b2": ex.w2.weight[:, h]}
        return res

    ref = merged(lambda g: g[0])  # align to the dominant, as moe-robust
    worst = 0.0
    for gi in range(len(ours)):
        for n in ("w1", "b1", "w2", "b2"):
            r = ref[gi][n].detach().numpy()
            c = tensors[n][gi]
            err = float(np.abs(c - r).max() / max(np.abs(r).max(), 1e-30))
            worst = max(worst, err)
            if err > 1e-5:
                print(f"FAIL {tag}: merged expert {gi} {n}: max relative difference {err:.2e}")
                bad += 1
    if not bad:
        print(f"ok   {tag}: merged tensors (the fixture) equal the authors' (max relative difference {worst:.1e})")
    # The Switch pipeline of the README aligns every expert to expert 0 before grouping
    # (permute-model.py): merged neurons then follow expert 0's order, so compare what
    # the merged experts compute on the calibration tokens, not their tensors.
    alt = merged(lambda g: 0)
    act = torch.nn.functional.gelu
    num = den = 0.0
    with torch.no_grad():
        for gi in range(len(ours)):
            a = {n: torch.from_numpy(tensors[n][gi]) for n in tensors}
            y = torch.nn.functional.linear(act(torch.nn.functional.linear(x, a["w1"], a["b1"])),
                                           a["w2"], a["b2"])
            b = alt[gi]
            z = torch.nn.functional.linear(act(torch.nn.functional.linear(x, b["w1"], b["b1"])),
                                           b["w2"], b["b2"])
            num += float(((z - y) ** 2).sum())
            den += float((y ** 2).sum())
    print(f"info {tag}: aligning to expert 0 instead (permute-model.py) changes the merged "
          f"experts' outputs on the calibration tokens by NMSE {num / den:.2e}")
    return bad


if __name__ == "__main__":
    sys.exit(main())
