#!/usr/bin/python3
"""tools/mr_trace.py: router auto-detection and the traces it writes.

    /usr/bin/python3 tests/test_mr_trace.py BUILD/moe-robust

Transformers, fastmoe, Tutel and DeepSpeed are not packaged here, so each family is a
small torch module built with the same module paths and class names as the library
(Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V3, Switch Transformers, fastmoe, Tutel,
DeepSpeed-MoE) plus tools/moe_model.py. For each: the recorder finds exactly the routers
(never a shared-expert gate or an attention projection), with the right layer indices,
top_k, score and norm_topk; the stored logits equal the gate's output (float32 exactly,
float16 / bfloat16 to their rounding); masks, shorter batches, ranks, the atomic rename;
and `moe-robust analyze` accepts every trace. Exit 1 on the first failure.
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from mr_trace import RoutingRecorder, find_routers  # noqa: E402

D, E = 8, 6
torch.manual_seed(0)


def cls(name, base=nn.Module, **attrs):
    """A class called `name` (the library's class name) with a forward."""
    return type(name, (base,), attrs)


# ---- Hugging Face style: layers.N.(block_sparse_moe|mlp).gate = Linear(d, E) ----------
def hf_block(block_cls, gate_attr, top_k, norm=None, shared=False, attr_k="top_k"):
    def init(self):
        nn.Module.__init__(self)
        self.gate = nn.Linear(D, E, bias=False)
        setattr(self, attr_k, top_k)
        if norm is not None:
            self.norm_topk_prob = norm
        if shared:
            self.shared_expert_gate = nn.Linear(D, 1, bias=False)
        self.experts = nn.ModuleList(nn.Linear(D, D) for _ in range(E))

    def forward(self, x):
        B, T, d = x.shape
        h = x.reshape(-1, d)
        logits = self.gate(h)  # [B*T, E], as in transformers
        w = torch.softmax(logits, -1)
        if shared:
            h = h * torch.sigmoid(self.shared_expert_gate(h))
        return (h * w[:, :1]).reshape(B, T, d), logits
    C = cls(block_cls, __init__=init, forward=forward)
    return C


def hf_model(block_cls, gate_attr, n_layers=3, **kw):
    Block = hf_block(block_cls, gate_attr, **kw)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = nn.Module()
            self.self_attn.q_proj = nn.Linear(D, D)
            setattr(self, gate_attr, Block())

        def forward(self, x):
            return x + getattr(self, gate_attr)(self.self_attn.q_proj(x))[0]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Module()
            self.model.layers = nn.ModuleList(Layer() for _ in range(n_layers))

        def forward(self, x):
            for layer in self.model.layers:
                x = layer(x)
            return x
    return Model()


# ---- DeepSeek: mlp.gate = MoEGate (weight [E, d], returns top-k, not logits) ----------
class MoEGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(E, D))
        self.top_k = 2
        self.scoring_func = "sigmoid"
        self.norm_topk_prob = True

    def forward(self, h):
        h = h.reshape(-1, h.shape[-1])
        s = torch.sigmoid(nn.functional.linear(h, self.weight))
        w, idx = torch.topk(s, 2, dim=-1)
        return idx, w


def deepseek_model():
    DeepseekV3MoE = cls("DeepseekV3MoE", __init__=lambda self: (nn.Module.__init__(self), setattr(self, "gate", MoEGate()))[0],
                        forward=lambda self, x: (self.gate(x), x)[1])

    class Layer(nn.Module):
        def __init__(self, moe):
            super().__init__()
            self.mlp = DeepseekV3MoE() if moe else nn.Sequential(nn.Linear(D, D))

        def forward(self, x):
            return self.mlp(x)
    m = nn.Module()
    m.model = nn.Module()
    m.model.layers = nn.ModuleList([Layer(False), Layer(True), Layer(True)])
    m.forward = lambda x: [l(x) for l in m.model.layers][-1]
    return m


# ---- Switch: encoder/decoder .block.N.layer.1.mlp.router.classifier -----------------
def switch_model():
    Router = cls("SwitchTransformersTop1Router",
                 __init__=lambda self: (nn.Module.__init__(self), setattr(self, "classifier", nn.Linear(D, E, bias=False)))[0],
                 forward=lambda self, x: torch.softmax(self.classifier(x), -1))

    def stack():
        s = nn.Module()
        s.block = nn.ModuleList()
        for i in range(2):
            b = nn.Module()
            b.layer = nn.ModuleList([nn.Module(), nn.Module()])
            b.layer[1].mlp = nn.Module()
            b.layer[1].mlp.router = Router()
            s.block.append(b)
        return s
    m = nn.Module()
    m.encoder, m.decoder = stack(), stack()

    def fwd(x):
        for s in (m.encoder, m.decoder):
            for b in s.block:
                b.layer[1].mlp.router(x)
        return x
    m.forward = fwd
    return m


# ---- fastmoe: FMoE with gate = NaiveGate(gate = Linear) ------------------------------
def fastmoe_model():
    NaiveGate = cls("NaiveGate", __init__=lambda self: (nn.Module.__init__(self), setattr(self, "gate", nn.Linear(D, E)), setattr(self, "top_k", 2))[0],
                    forward=lambda self, x: self.gate(x))
    FMoE = cls("FMoETransformerMLP", __init__=lambda self: (nn.Module.__init__(self), setattr(self, "gate", NaiveGate()))[0],
               forward=lambda self, x: (self.gate(x.reshape(-1, D)), x)[1])
    m = nn.Module()
    m.blocks = nn.ModuleList()
    for i in range(2):
        b = nn.Module()
        b.mlp = FMoE()
        m.blocks.append(b)
    m.forward = lambda x: [b.mlp(x) for b in m.blocks][-1]
    return m


# ---- Tutel (moe_layer.gates.0.wg) and DeepSpeed (deepspeed_moe.gate.wg) --------------
def tutel_model():
    TopKGate = cls("TopKGate", __init__=lambda self: (nn.Module.__init__(self), setattr(self, "wg", nn.Linear(D, E, bias=False)), setattr(self, "top_k", 2))[0])
    m = nn.Module()
    m.layers = nn.ModuleList()
    for i in range(2):
        l = nn.Module()
        l.moe = nn.Module()
        l.moe.gates = nn.ModuleList([TopKGate()])
        m.layers.append(l)
    m.forward = lambda x: [l.moe.gates[0].wg(x.reshape(-1, D)) for l in m.layers][-1]
    return m


def deepspeed_model():
    TopKGate = cls("TopKGate", __init__=lambda self: (nn.Module.__init__(self), setattr(self, "wg", nn.Linear(D, E, bias=False)), setattr(self, "k", 1))[0])
    m = nn.Module()
    m.h = nn.ModuleList()
    for i in range(3):
        l = nn.Module()
        if i % 2:
            l.mlp = nn.Module()
            l.mlp.deepspeed_moe = nn.Module()
            l.mlp.deepspeed_moe.gate = TopKGate()
        m.h.append(l)
    m.forward = lambda x: [l.mlp.deepspeed_moe.gate.wg(x.reshape(-1, D)) for l in m.h if hasattr(l, "mlp")][-1]
    return m


FAMILIES = [
    # name, builder, paths expected, layers, top_k, score, norm_topk
    ("mixtral", lambda: hf_model("MixtralSparseMoeBlock", "block_sparse_moe", top_k=2),
     [f"model.layers.{i}.block_sparse_moe.gate" for i in range(3)], [0, 1, 2], 2, "softmax", 1),
    ("qwen2_moe", lambda: hf_model("Qwen2MoeSparseMoeBlock", "mlp", top_k=4, norm=False, shared=True),
     [f"model.layers.{i}.mlp.gate" for i in range(3)], [0, 1, 2], 4, "softmax", 0),
    ("qwen3_moe", lambda: hf_model("Qwen3MoeSparseMoeBlock", "mlp", top_k=2, norm=True),
     [f"model.layers.{i}.mlp.gate" for i in range(3)], [0, 1, 2], 2, "softmax", 1),
    ("olmoe", lambda: hf_model("OlmoeSparseMoeBlock", "mlp", top_k=3, norm=False),
     [f"model.layers.{i}.mlp.gate" for i in range(3)], [0, 1, 2], 3, "softmax", 0),
    ("deepseek", deepseek_model, ["model.layers.1.mlp.gate", "model.layers.2.mlp.gate"], [1, 2], 2,
     "sigmoid", 1),
    ("switch", switch_model, [f"{s}.block.{i}.layer.1.mlp.router.classifier" for s in ("encoder", "decoder") for i in range(2)],
     [0, 1, 2, 3], 1, "softmax", 0),
    ("fastmoe", fastmoe_model, ["blocks.0.mlp.gate.gate", "blocks.1.mlp.gate.gate"], [0, 1], 2, "softmax", 1),
    ("tutel", tutel_model, ["layers.0.moe.gates.0.wg", "layers.1.moe.gates.0.wg"], [0, 1], 2, "softmax", 1),
    ("deepspeed", deepspeed_model, ["h.1.mlp.deepspeed_moe.gate.wg"], [1], 1, "softmax", 1),
]


def check(cond, msg):
    if not cond:
        print(f"FAIL {msg}")
        sys.exit(1)


def analyze(binary, files, tmp):
    out = os.path.join(tmp, "an")
    r = subprocess.run([binary, "analyze", *files, "--out", out, "--bootstrap", "10", "--quiet",
                        "--threads", "1"], capture_output=True, text=True)
    check(r.returncode == 0, f"analyze {files}: {r.stderr}")
    subprocess.run(["rm", "-rf", out])


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, paths, layers, k, score, norm in FAMILIES:
            model = build()
            rs = find_routers(model)
            check([r.path for r in rs] == paths, f"{name}: found {[r.path for r in rs]}, expected {paths}")
            check([r.layer for r in rs] == layers, f"{name}: layers {[r.layer for r in rs]}")
            check(all(r.top_k == k and r.score == score and r.norm_topk == norm for r in rs),
                  f"{name}: top_k/score/norm {[(r.top_k, r.score, r.norm_topk) for r in rs]}")
            for dtype in ("float32", "float16", "bfloat16"):
                path = os.path.join(tmp, f"{name}-{dtype}.h5")
                x = torch.randn(5, 7, D)
                gates = {}
                hooks = [r.module.register_forward_hook(
                    lambda m, i, o, p=r.path: gates.__setitem__(p, (o[0] if isinstance(o, tuple) else o).detach()))
                    for r in rs if r.layout.kind == "logits"]
                with RoutingRecorder(model, path, model_name=name, router="native",
                                     checkpoint="c", step=0, task="none", dtype=dtype) as rec:
                    with torch.no_grad():
                        model(x[:3])
                    rec.record(sample_ids=[0, 1, 2])
                    with torch.no_grad():
                        model(x[3:, :5])  # a shorter batch: padded, mask 0
                    rec.record(sample_ids=[3, 4])
                for h in hooks:
                    h.remove()
                with h5py.File(path, "r") as f:
                    check(list(f["sample_id"][()]) == [0, 1, 2, 3, 4], f"{name}: ids")
                    check(f["mask"][()].sum() == 3 * 7 + 2 * 5 and f["mask"][4, 5] == 0, f"{name}: mask")
                    for r in rs:
                        ds = f[f"layers/{r.layer}/router_logits"]
                        check(ds.shape == (5, 7, E), f"{name}: shape {ds.shape}")
                        check(ds.attrs["top_k"] == k, f"{name}: top_k attr")
                        if r.layout.kind == "logits" and dtype == "float32":
                            ref = gates[r.path].reshape(2, 5, E).numpy()  # last batch
                            check(np.array_equal(ds[3:, :5], ref), f"{name}: logits differ from the gate's output")
                        if dtype == "bfloat16":
                            check(ds.dtype == np.uint16 and ds.attrs["dtype"] == "bfloat16", f"{name}: bf16 storage")
                analyze(binary, [path], tmp)
            print(f"ok   {name}: {len(rs)} routers {paths[0]}..., top_k {k}, {score}, norm_topk {norm}; float32/16, bfloat16 traces analyzed")

        # tools/moe_model.py: the Router's own (probs, top-k, weights) on a shipped fixture
        from h5export import load_model
        model, _ = load_model("tests/fixtures/tiny-lm.h5")
        rs = find_routers(model)
        want = [f"blocks.{L}.moe.router" for L in model.cfg.moe_layers]
        check([r.path for r in rs] == want and rs[0].layout.kind == "route",
              f"moe_model: found {[r.path for r in rs]}, expected {want}")
        path = os.path.join(tmp, "lm.h5")
        tokens = torch.randint(0, 11, (4, 9))
        with RoutingRecorder(model, path, model_name="tiny", router="softmax", checkpoint="c",
                             step=1, task="lm") as rec, torch.no_grad():
            logits, routes = model(tokens[:, :-1])
            rec.record(sample_ids=[7, 3, 5, 1], targets=tokens[:, 1:], predictions=logits.argmax(-1),
                       token_loss=torch.nn.functional.cross_entropy(logits.reshape(-1, 11), tokens[:, 1:].reshape(-1), reduction="none").reshape(4, 8))
        with h5py.File(path, "r") as f:
            for r in routes:
                L = r["layer"]
                check(np.array_equal(f[f"layers/{L}/topk"][()], r["topk"].numpy()), "moe_model: topk")
                check(np.array_equal(f[f"layers/{L}/probs"][()], r["probs"].numpy()), "moe_model: probs")
        analyze(binary, [path], tmp)
        print(f"ok   moe_model: {', '.join(want)} (probs, top-k, weights as the router computed them)")

        # regex + to_logits for a custom layout; an error leaves no file; ranks
        model = hf_model("MyMoE", "ffn", top_k=2)
        path = os.path.join(tmp, "custom.h5")
        try:
            with RoutingRecorder(model, path, model_name="m", router="r", checkpoint="c", step=0,
                                 task="none", modules=r"\.ffn$", top_k=2,
                                 to_logits=lambda mod, inp, out: out[1]) as rec:
                model(torch.randn(2, 3, D))
                rec.record(sample_ids=[0, 1])
                raise RuntimeError("interrupted")
        except RuntimeError:
            pass
        check(not os.path.exists(path) and not [p for p in os.listdir(tmp) if ".tmp-" in p],
              "an interrupted recording left a file")
        with RoutingRecorder(model, path, model_name="m", router="r", checkpoint="c", step=0,
                             task="none", modules=r"\.ffn$", top_k=2, rank=1,
                             to_logits=lambda mod, inp, out: out[1]) as rec:
            model(torch.randn(2, 3, D))
            rec.record(sample_ids=[0, 1])
        check(os.path.exists(os.path.join(tmp, "custom-rank1.h5")), "rank file name")
        try:
            find_routers(nn.Sequential(nn.Linear(D, D)))
            check(False, "a model without routers was accepted")
        except ValueError as e:
            check("modules=REGEX" in str(e), f"message: {e}")
        print("ok   custom regex + to_logits, interrupted recording leaves nothing, rank files, no routers refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
