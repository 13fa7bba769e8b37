#!/usr/bin/python3
"""Record routing traces (docs/trace-format.md) from any PyTorch model, for
`moe-robust analyze` (docs/traces.md). Needs only torch and h5py.

    from mr_trace import RoutingRecorder

    with RoutingRecorder(model, "traces/olmoe-step2000-clean.h5", model_name="olmoe",
                         router="softmax", checkpoint="step2000", step=2000,
                         task="lm") as rec:
        for batch in loader:
            out = model(batch["input_ids"], attention_mask=batch["attention_mask"])
            rec.record(sample_ids=batch["id"], mask=batch["attention_mask"],
                       targets=..., token_loss=..., predictions=...)

The recorder hooks the router modules of `model` (found by module path and class, or
named by `modules=REGEX`), collects what each router produced in the forward pass, and
`record()` writes those rows to disk at once (HDF5 datasets grown by rows, chunked and
compressed): memory holds one batch, never the run. Under torch.distributed each rank
writes its own file (`NAME-rankR.h5`); `analyze` merges the ranks by sample id. The file
is written under a temporary name and renamed when the context exits without error.

Layouts found automatically (the module's path, its class):
  Hugging Face Mixtral        ...block_sparse_moe.gate     Linear -> router logits
  Qwen2-MoE, Qwen3-MoE, OLMoE ...mlp.gate                  Linear -> router logits
  DeepSeek-MoE / V2 / V3      ...mlp.gate                  MoEGate: logits = x W^T
                                                           (scoring_func softmax/sigmoid)
  Switch Transformers         ...router.classifier         Linear -> router logits (k = 1)
  fastmoe                     ...gate.gate                 Linear -> logits (NaiveGate)
  Tutel, DeepSpeed-MoE        ...gate.wg, ...gates.N.wg    Linear -> logits (TopKGate)
  tools/moe_model.py          blocks.N.moe.router          Router -> (probs, top-k, weights)
top_k, the score function and norm_topk are read from the module that owns the gate
(top_k / num_experts_per_tok / k, norm_topk_prob, scoring_func) unless given.
A custom model: modules=r"regex of module paths" and, if the module's output is not the
logits, to_logits=lambda module, inputs, output: logits [tokens, E].
"""

import os
import re

import h5py
import numpy as np
import torch
import torch.nn.functional as F

FORMAT = "moe-robust-trace"
VERSION = 1


class Layout:
    """How to read one family's routers: a path regex, an optional class-name test, how
    to get logits (or a (probs, topk, weights) triple), and the owner's attributes."""

    def __init__(self, name, pattern, classes=None, kind="logits", score="softmax",
                 norm_topk=None, top_k=None):
        self.name = name
        self.pattern = re.compile(pattern)
        self.classes = classes
        self.kind = kind          # "logits", "linear_input" (x W^T), "route" (probs, idx, w)
        self.score = score
        self.norm_topk = norm_topk
        self.top_k = top_k

    def matches(self, path, module):
        if not self.pattern.search(path):
            return False
        return self.classes is None or type(module).__name__ in self.classes


LAYOUTS = [
    Layout("moe_model", r"(^|\.)blocks\.\d+\.moe\.router$", kind="route"),
    Layout("mixtral", r"(^|\.)block_sparse_moe\.gate$", classes=("Linear",)),
    Layout("deepseek", r"(^|\.)mlp\.gate$", classes=("MoEGate",), kind="linear_input"),
    Layout("hf-mlp-gate", r"(^|\.)mlp\.gate$", classes=("Linear",)),
    Layout("switch", r"(^|\.)router\.classifier$", classes=("Linear",), norm_topk=0, top_k=1),
    Layout("fastmoe", r"(^|\.)gate\.gate$", classes=("Linear",), norm_topk=1),
    Layout("tutel-deepspeed", r"(^|\.)gates?(\.\d+)?\.wg$", classes=("Linear",)),
]


def _owner(model, path):
    """The module that owns the gate at `path` (its parent), or the model."""
    parts = path.split(".")
    m = model
    owners = [model]
    for p in parts[:-1]:
        m = getattr(m, p) if not p.isdigit() else m[int(p)]
        owners.append(m)
    return owners


def _attr(owners, names, default=None):
    for m in reversed(owners):
        for n in names:
            v = getattr(m, n, None)
            if v is not None and not callable(v) and not isinstance(v, torch.Tensor):
                return v
            cfg = getattr(m, "config", None)
            if cfg is not None and getattr(cfg, n, None) is not None:
                return getattr(cfg, n)
    return default


class _Router:
    def __init__(self, path, module, layout, layer, top_k, score, norm_topk):
        self.path, self.module, self.layout = path, module, layout
        self.layer, self.top_k, self.score, self.norm_topk = layer, top_k, score, norm_topk
        self.out = None  # what the last forward produced
        self.handle = None


def find_routers(model, modules=None, to_logits=None, top_k=None, score=None, norm_topk=None):
    """The router modules of `model` as _Router records, in module order; layer = the
    first integer in the path (block index), or the ordinal when those collide (e.g.
    Switch's encoder and decoder blocks)."""
    found = []
    pat = re.compile(modules) if modules else None
    for path, mod in model.named_modules():
        if pat is not None:
            if not pat.search(path):
                continue
            layout = Layout("custom", ".", kind="custom" if to_logits else "logits")
        else:
            layout = next((l for l in LAYOUTS if l.matches(path, mod)), None)
            if layout is None:
                continue
        owners = _owner(model, path) + [mod]
        if layout.kind == "route":
            k = top_k or _attr([mod], ("top_k",))
            nt = norm_topk if norm_topk is not None else int(getattr(mod, "gate_norm", "renorm") == "renorm")
            sc = score or "softmax"
        else:
            k = top_k or layout.top_k or _attr(owners, ("top_k", "num_experts_per_tok", "k",
                                                         "num_selected_experts"))
            nt = norm_topk if norm_topk is not None else layout.norm_topk
            if nt is None:
                nt = _attr(owners, ("norm_topk_prob",), None)
                # Mixtral renormalizes its top-k; DeepSpeed/Tutel top-2 gates do too
                nt = 1 if nt is None and layout.name in ("mixtral", "tutel-deepspeed") else nt
                nt = int(bool(nt)) if nt is not None else 1
            sc = score or _attr(owners, ("scoring_func",), None) or layout.score
        if k is None:
            raise ValueError(f"{path}: cannot tell top_k; pass top_k=")
        m = re.search(r"(?:^|\.)(\d+)(?:\.|$)", path)
        found.append(_Router(path, mod, layout, int(m.group(1)) if m else -1, int(k), sc, int(nt)))
    if not found:
        raise ValueError("no router module found: name them with modules=REGEX "
                         "(and to_logits= if their output is not the logits)")
    layers = [r.layer for r in found]
    if min(layers) < 0 or len(set(layers)) != len(layers):
        for i, r in enumerate(found):
            r.layer = i
    for r in found:
        r.to_logits = to_logits
    return found


class RoutingRecorder:
    """Context manager: hooks the routers of `model` and writes one trace file.

    model_name, router, checkpoint, step, condition ("clean" or "NAME:S"), task
    ("classify", "lm", "none"), source: the root attributes (docs/trace-format.md).
    dtype: how router logits are stored: "float32" (default), "float16" or "bfloat16".
    positions: T; default: the first batch's token count (later batches may be shorter,
    they are padded with mask 0, never longer).
    """

    def __init__(self, model, path, *, model_name, router, checkpoint, step,
                 condition="clean", task="classify", source=None, modules=None,
                 to_logits=None, top_k=None, score=None, norm_topk=None, dtype="float32",
                 positions=None, compression="gzip", rank=None):
        if task not in ("classify", "lm", "none"):
            raise ValueError(f"task = {task!r}: classify, lm or none")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype = {dtype!r}: float32, float16 or bfloat16")
        for key, v in (("model_name", model_name), ("router", router),
                       ("checkpoint", checkpoint)):
            if not v or "/" in v or len(v) > 63:
                raise ValueError(f"{key} = {v!r}: 1..63 characters without '/'")
        if rank is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1:
                rank = torch.distributed.get_rank()
        if rank is not None:
            root, ext = os.path.splitext(path)
            path = f"{root}-rank{rank}{ext or '.h5'}"
        self.model, self.path, self.task, self.dtype = model, path, task, dtype
        self.attrs = {"format": FORMAT, "version": VERSION, "model": model_name,
                      "router": router, "checkpoint": checkpoint, "step": int(step),
                      "condition": condition, "task": task,
                      "source": source or f"tools/mr_trace.py, torch {torch.__version__}"}
        self.routers = find_routers(model, modules, to_logits, top_k, score, norm_topk)
        self.T = positions
        self.n = 0
        self.compression = compression
        self.f = None
        self.tmp = f"{path}.tmp-{os.getpid()}"

    # -- hooks -------------------------------------------------------------------
    def _hook(self, r):
        def hook(module, inputs, output):
            if r.to_logits is not None:
                r.out = r.to_logits(module, inputs, output).detach()
            elif r.layout.kind == "route":
                probs, idx, w = output[:3]
                r.out = (probs.detach(), idx.detach(), w.detach())
            elif r.layout.kind == "linear_input":
                x = inputs[0]
                r.out = F.linear(x.reshape(-1, x.shape[-1]).float(), module.weight.float()).detach()
            else:
                out = output[0] if isinstance(output, (tuple, list)) else output
                r.out = out.detach()
        return hook

    def __enter__(self):
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        self.f = h5py.File(self.tmp, "w")
        for k, v in self.attrs.items():
            self.f.attrs[k] = v
        for r in self.routers:
            r.handle = r.module.register_forward_hook(self._hook(r))
        return self

    def __exit__(self, exc_type, exc, tb):
        for r in self.routers:
            if r.handle is not None:
                r.handle.remove()
                r.handle = None
        f, self.f = self.f, None
        f.close()
        if exc_type is None and self.n == 0:
            exc_type = ValueError
            os.remove(self.tmp)
            raise ValueError(f"{self.path}: no batch was recorded")
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.remove(self.tmp)
        return False

    # -- writing -------------------------------------------------------------------
    def _append(self, name, x, attrs=None):
        """Append rows x [B, ...] to dataset `name` (created on first use, grown by rows)."""
        if name not in self.f:
            chunk_rows = max(1, min(64, (1 << 20) // max(1, x[0].nbytes)))
            ds = self.f.create_dataset(name, shape=(0,) + x.shape[1:], maxshape=(None,) + x.shape[1:],
                                       dtype=x.dtype, chunks=(chunk_rows,) + x.shape[1:],
                                       compression=self.compression)
            for k, v in (attrs or {}).items():
                ds.attrs[k] = v
        ds = self.f[name]
        if ds.shape[1:] != x.shape[1:]:
            raise ValueError(f"{name}: rows of shape {x.shape[1:]}, earlier {ds.shape[1:]}")
        ds.resize(ds.shape[0] + x.shape[0], axis=0)
        ds[ds.shape[0] - x.shape[0]:] = x

    def _pad(self, x, B, T, fill=0):
        """[B, t, ...] -> [B, T, ...] padded with `fill`."""
        if x.shape[1] == T:
            return x
        pad = np.full((B, T - x.shape[1]) + x.shape[2:], fill, dtype=x.dtype)
        return np.concatenate([x, pad], axis=1)

    def _scores(self, t):
        t = t.float()
        if self.dtype == "float16":
            return t.half().cpu().numpy(), {}
        if self.dtype == "bfloat16":
            return t.bfloat16().view(torch.int16).cpu().numpy().view(np.uint16), {"dtype": "bfloat16"}
        return t.cpu().numpy().astype(np.float32), {}

    def record(self, sample_ids, mask=None, labels=None, targets=None, logits=None,
               token_loss=None, predictions=None):
        """Write the batch the model just ran: sample_ids [B] (stable ids pairing samples
        across traces), mask [B, t] (1 = real token), labels [B] and logits [B, C]
        (classify), targets, token_loss and predictions [B, t] (lm)."""
        ids = np.asarray(torch.as_tensor(sample_ids).cpu(), dtype=np.int64).reshape(-1)
        B = ids.shape[0]
        got = [r for r in self.routers if r.out is not None]
        if len(got) != len(self.routers):
            missing = [r.path for r in self.routers if r.out is None]
            raise ValueError(f"routers did not run in this forward: {missing}")
        first = self.routers[0].out
        first = first[0] if isinstance(first, tuple) else first
        t = first.numel() // (B * first.shape[-1])
        if first.numel() != B * t * first.shape[-1]:
            raise ValueError(f"{self.routers[0].path}: {tuple(first.shape)} is not "
                             f"[{B} samples x tokens x experts]")
        if self.T is None:
            self.T = t
        if t > self.T:
            raise ValueError(f"batch of {t} positions, the trace has {self.T} (positions=)")
        T = self.T
        m = np.ones((B, t), np.uint8) if mask is None else \
            np.asarray(torch.as_tensor(mask).cpu()).astype(np.uint8).reshape(B, t)
        self._append("sample_id", ids)
        if mask is not None or t < T or "mask" in self.f:
            if "mask" not in self.f and self.n:
                self._append_ones_mask_before()
            self._append("mask", self._pad(m, B, T))
        for r in self.routers:
            base = f"layers/{r.layer}"
            at = {"top_k": r.top_k, "score": r.score, "norm_topk": r.norm_topk}
            if isinstance(r.out, tuple):
                probs, idx, w = r.out
                E = probs.shape[-1]
                self._append(f"{base}/probs", self._pad(probs.float().reshape(B, t, E).cpu().numpy(), B, T), at)
                ix = self._pad(idx.reshape(B, t, -1).to(torch.int32).cpu().numpy(), B, T)
                ix[:, t:] = np.arange(ix.shape[-1], dtype=np.int32)  # padding: distinct, in range
                self._append(f"{base}/topk", ix)
                self._append(f"{base}/weights", self._pad(w.float().reshape(B, t, -1).cpu().numpy(), B, T))
            else:
                E = r.out.shape[-1]
                x, extra = self._scores(r.out.reshape(B, t, E))
                self._append(f"{base}/router_logits", self._pad(x, B, T), {**at, **extra})
            r.out = None
        if self.task == "classify":
            if labels is not None:
                self._append("labels", np.asarray(torch.as_tensor(labels).cpu(), np.int64).reshape(B))
            if logits is not None:
                self._append("logits", torch.as_tensor(logits).detach().float().cpu().numpy().reshape(B, -1))
        elif self.task == "lm":
            for name, v, dt in (("targets", targets, np.int64), ("token_loss", token_loss, np.float32),
                                ("predictions", predictions, np.int64)):
                if v is not None:
                    a = torch.as_tensor(v).detach().cpu().numpy().astype(dt).reshape(B, t)
                    self._append(name, self._pad(a, B, T))
        self.n += B

    def _append_ones_mask_before(self):
        self._append("mask", np.ones((self.n, self.T), np.uint8))
