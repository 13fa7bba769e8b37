#!/usr/bin/python3
"""PyTorch eager throughput of tools/moe_model.py (or, with --hf, of tools/hf_moe.py on a
Hugging Face checkpoint), the counterpart of bench/mr_bench.c (moe-robust-bench) for
bench/run.sh and docs/performance.md.

    /usr/bin/python3 tools/bench_torch.py --model M.h5 (--data D | --random-tokens N)
        [--router R] [--router-opt K=V ...] [--threads T] [--batch B] [--limit N]
        [--reps R] [--impl reference|fast]
    /usr/bin/python3 tools/bench_torch.py --hf DIR --max-seq-len T --random-tokens N ...

--hf runs the checkpoint in DIR as tools/hf_moe.py implements it (float32; the family's
own routing for --router softmax, else a tools/moe_model.py router swapped in), on the
tokens `moe-robust-bench --random-tokens N` draws for the model `moe-robust import DIR
--max-seq-len T` writes (sequences of T tokens).

--impl fast (not with --hf) runs the same model as a user writing for speed would
(tools/moe_fast.py: torch.topk, expert-sorted dispatch with each expert's GEMMs once on
its contiguous slice): bench/run.sh's best-effort PyTorch column. The default,
reference, runs tools/moe_model.py as written.

Same work as the C bench: forward passes only, float32, micro-batches of B
samples (default 16, as moe-robust-bench), the same samples (`--random-tokens
N` draws the C bench's tokens: GSL mt19937 stream (0, "bench/tokens", 0),
gsl_rng_uniform_int), under torch.inference_mode with torch.set_num_threads(T)
(default 2, the C bench's thread count).  The C bench spreads micro-batches over T
OpenMP threads with single-threaded BLAS; torch parallelizes inside each
operator instead, which is how PyTorch eager is used.

Times one warm-up micro-batch, then R full passes (default 1; eager PyTorch
has no compilation to amortize, so a long warm-up adds nothing), and prints
the best pass (wall time, and process CPU time of all threads) and a last line
    RESULT samples_per_s=... tokens_per_s=... rss_kib=... cpu_tokens_per_s=...
with the peak RSS of this process (getrusage ru_maxrss: model, data and
activations, plus the Python/torch runtime itself).
"""

import argparse
import os
import resource
import sys
import time


def _early_threads():
    """OpenMP reads OMP_NUM_THREADS when torch is imported: set it first so the
    pool matches --threads (as tools/train.py does)."""
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


os.environ["OMP_NUM_THREADS"] = _early_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
from h5export import load_model  # noqa: E402
from data import load_eval_data  # noqa: E402
from moe_model import set_router, gsl_mt19937_uint32, mr_rng_key  # noqa: E402
import hf_moe  # noqa: E402


def c_bench_tokens(n, cols, vocab):
    """The tokens of `moe-robust-bench --random-tokens n`: n*cols draws of
    gsl_rng_uniform_int(r, vocab) from mr_rng_alloc(0, "bench/tokens", 0)."""
    k = mr_rng_key(0, "bench/tokens", 0)
    s = (k ^ (k >> 32)) & ((1 << 64) - 1)
    scale = 0xFFFFFFFF // vocab  # GSL: range = max - min of mt19937
    need = n * cols
    m = need + need // 64 + 64  # draws k >= vocab are rejected (rare): a little extra
    while True:
        k_all = np.asarray(gsl_mt19937_uint32(s or 1, m), dtype=np.uint64) // scale
        out = k_all[k_all < vocab]
        if len(out) >= need:
            break
        m *= 2
    return out[:need].astype(np.int64).reshape(n, cols)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--hf", metavar="DIR", help="a Hugging Face checkpoint (tools/hf_moe.py)")
    ap.add_argument("--max-seq-len", type=int, default=0, help="with --hf: as import's")
    ap.add_argument("--data")
    ap.add_argument("--random-tokens", type=int, default=0)
    ap.add_argument("--router", default="softmax")
    ap.add_argument("--router-opt", action="append", default=[], metavar="K=V")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--limit", type=int, default=0, help="only the first N samples")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--impl", choices=["reference", "fast"], default="reference",
                    help="tools/moe_model.py as written, or tools/moe_fast.py's speed-ups")
    args = ap.parse_args()
    if args.impl == "fast" and args.hf:
        ap.error("--impl fast is for moe-robust models (--model), not --hf")
    if not args.data and args.random_tokens <= 0:
        ap.error("--data or --random-tokens N is required")
    if bool(args.model) == bool(args.hf):
        ap.error("one of --model and --hf is required")
    torch.set_num_threads(args.threads)

    if args.hf:
        s, W = hf_moe.load(args.hf, torch.float32, args.max_seq_len)
        routers = (None if args.router == "softmax"
                   else hf_moe.make_routers(s, args.router, args.router_opt or None))
        attrs = {"task": "lm", "max_seq_len": s.max_seq_len, "vocab_size": s.V}

        def model(x):
            return hf_moe.forward(s, W, x, torch.float32, routers)
    else:
        model, attrs = load_model(args.model)
        set_router(model, args.router, args.router_opt or None)
        if args.impl == "fast":
            import moe_fast
            moe_fast.speed_up(model)
    if args.data:
        kind, x, _ = load_eval_data(args.data)
        if args.limit:
            x = x[:args.limit]
    else:
        if attrs["task"] != "lm":
            sys.exit("bench_torch.py: --random-tokens needs an lm model")
        kind = "tokens"
        x = c_bench_tokens(args.random_tokens, attrs["max_seq_len"] + 1, attrs["vocab_size"])
    if kind == "images":
        inputs = torch.from_numpy(np.ascontiguousarray(x))
        T = model.cfg.n_pos()  # (--hf models are lm)
    else:
        inputs = torch.from_numpy(x[:, :-1].astype(np.int64))  # the model reads [:, :T]
        T = inputs.shape[1]
    n, B = len(inputs), args.batch

    def one_pass(limit=None):
        """(wall seconds, process CPU seconds of all threads) of one pass"""
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n if limit is None else min(n, limit), B):
            model(inputs[i:i + B])
        return time.perf_counter() - t0, time.process_time() - c0

    with torch.inference_mode():
        one_pass(B)  # warm-up: allocator, thread pool
        times = [one_pass() for _ in range(args.reps)]
        best, best_cpu = min(t for t, _ in times), min(c for _, c in times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sps, tps = n / best, n * T / best
    print(f"model        {args.model or args.hf}")
    print(f"router       {args.router}{' ' + ','.join(args.router_opt) if args.router_opt else ''}"
          f", torch {torch.__version__} eager ({args.impl}), {torch.get_num_threads()} threads, "
          f"batch {B}")
    print(f"samples      {n} x {T} tokens")
    print(f"time         {best:.3f} s (best of {args.reps})")
    print(f"throughput   {sps:.1f} samples/s, {tps:.0f} tokens/s")
    print(f"CPU time     {best_cpu:.3f} s (best of {args.reps}): {n * T / best_cpu:.1f} tokens per CPU second")
    print(f"peak RSS     {rss} KiB")
    print(f"RESULT samples_per_s={sps:.3f} tokens_per_s={tps:.1f} rss_kib={rss} "
          f"cpu_tokens_per_s={n * T / best_cpu:.2f}")


if __name__ == "__main__":
    main()
