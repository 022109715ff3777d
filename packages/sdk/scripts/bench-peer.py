"""The peer column of `blip2 bench`: PyTorch eager on the same shapes and the same weights.

`blip2 bench` spawns this script when `python3 -c 'import torch'` works. It reads the
bench's model folder (config.json and model.safetensors, mapped with numpy: float32
weights share the page cache with onnxruntime's mapping; bfloat16 ones are converted
copies), runs BLIP-2 OPT's image side and language model written with
torch.nn.functional in each asked dtype, and prints one JSON object on stdout:
{"torch": version, "threads": n, "figures": {dtype: {key: ms}}, "lowerBounds": {dtype: [key]}},
keys as the bench's. A repetition that runs past the workload's `peerBudgetMs` is stopped
(SIGALRM, at the end of the torch op under way) and its figure is the time it had taken: a
lower bound, listed in "lowerBounds" (a CPU without kernels for a dtype, e.g. bfloat16 on
AVX2, would otherwise take hours). Progress goes to stderr. What transformers runs on CPU is this eager code; only the
module plumbing around it is left out.

usage: python3 bench-peer.py MODEL_DIR WORKLOAD_JSON DTYPE[,DTYPE...]
"""

import json
import os
import signal
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def log(message):
    print(f"peer: {message}", file=sys.stderr, flush=True)


class Weights:
    """model.safetensors mapped with numpy; tensors are views (float32) or converted copies."""

    def __init__(self, path, dtype):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            self.header = json.loads(f.read(n))
        self.base = 8 + n
        self.map = np.memmap(path, dtype=np.uint8, mode="r")
        self.dtype = dtype

    def __call__(self, name):
        h = self.header[name]
        a, b = h["data_offsets"]
        np_dtype = {"F32": np.float32, "F16": np.float16}[h["dtype"]]
        t = torch.from_numpy(self.map[self.base + a : self.base + b].view(np_dtype).reshape(h["shape"]))
        return t if t.dtype == self.dtype else t.to(self.dtype)


def layer_norm(x, w, p, eps):
    return F.layer_norm(x, x.shape[-1:], w(p + ".weight"), w(p + ".bias"), eps)


def linear(x, w, p):
    return F.linear(x, w(p + ".weight"), w(p + ".bias"))


def attention(q, k, v, causal=False):
    """softmax(q k^T / sqrt(d)) v, as transformers' eager attention (torch 1.13 has no fused one)."""
    scores = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5)
    if causal:
        t = q.shape[-2]
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def heads(x, n):
    b, t, d = x.shape
    return x.view(b, t, n, d // n).transpose(1, 2)


def merge(x):
    b, n, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, n * d)


class ImageSide:
    """Blip2VisionModel + Blip2QFormerModel (query branch) + language_projection."""

    def __init__(self, config, w):
        self.v = config["vision_config"]
        self.q = config["qformer_config"]
        self.w = w
        wv = {}
        # the layers' weights are read once per image: materialize them once (a bfloat16 copy)
        for name in w.header:
            if name.startswith(("vision_model.", "qformer.", "language_projection.", "query_tokens")):
                wv[name] = w(name)
        self.get = wv.__getitem__

    def __call__(self, pixels):
        v, q, w = self.v, self.q, self.get
        x = F.conv2d(pixels, w("vision_model.embeddings.patch_embedding.weight"),
                     w("vision_model.embeddings.patch_embedding.bias"), stride=v["patch_size"])
        x = x.flatten(2).transpose(1, 2)
        cls = w("vision_model.embeddings.class_embedding").expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], 1) + w("vision_model.embeddings.position_embedding")
        n = v["num_attention_heads"]
        eps = v["layer_norm_eps"]
        for i in range(v["num_hidden_layers"]):
            p = f"vision_model.encoder.layers.{i}."
            h = layer_norm(x, w, p + "layer_norm1", eps)
            qkv = linear(h, w, p + "self_attn.qkv")
            a, b_, c = qkv.chunk(3, -1)
            h = merge(attention(heads(a, n), heads(b_, n), heads(c, n)))
            x = x + linear(h, w, p + "self_attn.projection")
            h = layer_norm(x, w, p + "layer_norm2", eps)
            x = x + linear(F.gelu(linear(h, w, p + "mlp.fc1")), w, p + "mlp.fc2")
        image = layer_norm(x, w, "vision_model.post_layernorm", eps)

        n = q["num_attention_heads"]
        eps = q["layer_norm_eps"]
        y = layer_norm(w("query_tokens").expand(image.shape[0], -1, -1), w, "qformer.layernorm", eps)
        for i in range(q["num_hidden_layers"]):
            p = f"qformer.encoder.layer.{i}."
            y = self.attention(y, y, p + "attention.", n, eps)
            if i % q["cross_attention_frequency"] == 0:
                y = self.attention(y, image, p + "crossattention.", n, eps)
            h = linear(F.gelu(linear(y, w, p + "intermediate_query.dense")), w, p + "output_query.dense")
            y = F.layer_norm(h + y, h.shape[-1:], w(p + "output_query.LayerNorm.weight"),
                             w(p + "output_query.LayerNorm.bias"), eps)
        return linear(y, w, "language_projection")

    def attention(self, y, kv, p, n, eps):
        w = self.get
        a = heads(linear(y, w, p + "attention.query"), n)
        b = heads(linear(kv, w, p + "attention.key"), n)
        c = heads(linear(kv, w, p + "attention.value"), n)
        h = linear(merge(attention(a, b, c)), w, p + "output.dense")
        return F.layer_norm(h + y, h.shape[-1:], w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps)


class Opt:
    """OPTForCausalLM's decoder with a key/value cache grown by concatenation, as transformers' DynamicCache."""

    def __init__(self, config, w):
        self.t = config["text_config"]
        wv = {}
        for name in w.header:
            if name.startswith("language_model."):
                wv[name] = w(name)
        # checkpoints that tie the LM head to the embeddings store no lm_head
        wv.setdefault("language_model.lm_head.weight", wv["language_model.model.decoder.embed_tokens.weight"])
        self.get = wv.__getitem__

    def forward(self, x, cache, start):
        t, w = self.t, self.get
        n = t["num_attention_heads"]
        b, s, _ = x.shape
        pos = torch.arange(start + 2, start + 2 + s)  # OPT's learned positions are offset by 2
        x = x + w("language_model.model.decoder.embed_positions.weight")[pos]
        new = []
        for i in range(t["num_hidden_layers"]):
            p = f"language_model.model.decoder.layers.{i}."
            h = layer_norm(x, w, p + "self_attn_layer_norm", 1e-5)
            q = heads(linear(h, w, p + "self_attn.q_proj"), n)
            k = heads(linear(h, w, p + "self_attn.k_proj"), n)
            v = heads(linear(h, w, p + "self_attn.v_proj"), n)
            if cache is not None:
                k = torch.cat([cache[i][0], k], 2)
                v = torch.cat([cache[i][1], v], 2)
            new.append((k, v))
            h = merge(attention(q, k, v, causal=cache is None and s > 1))
            x = x + linear(h, w, p + "self_attn.out_proj")
            h = layer_norm(x, w, p + "final_layer_norm", 1e-5)
            x = x + linear(F.relu(linear(h, w, p + "fc1")), w, p + "fc2")
        x = layer_norm(x[:, -1:], w, "language_model.model.decoder.final_layer_norm", 1e-5)
        return F.linear(x, w("language_model.lm_head.weight")), new

    def random_cache(self, rows, length, dtype):
        t = self.t
        n = t["num_attention_heads"]
        d = t["hidden_size"] // n
        return [(torch.randn(rows, n, length, d, dtype=dtype), torch.randn(rows, n, length, d, dtype=dtype))
                for _ in range(t["num_hidden_layers"])]


class OverBudget(Exception):
    """A repetition ran past the budget (raised by SIGALRM between torch ops)."""


def over_budget(signum, frame):
    raise OverBudget()


def timed(f, runs, budget_ms):
    """ms of each of `runs` calls of f (the caller drops warm-ups), and the ms a call had
    taken when it ran past `budget_ms` and was stopped (None when none did)."""
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, budget_ms / 1000)
        try:
            with torch.inference_mode():
                f()
        except OverBudget:
            return out, (time.perf_counter() - t) * 1000
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.append((time.perf_counter() - t) * 1000)
    return out, None


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def measure(folder, work, name):
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]
    config = json.load(open(f"{folder}/config.json"))
    if config["text_config"]["model_type"] != "opt":
        raise SystemExit("peer: only OPT variants have a PyTorch column")
    w = Weights(f"{folder}/model.safetensors", dtype)
    figures = {}
    bounds = set()
    budget = work["peerBudgetMs"]

    def put(key, value, lower=False):
        # logged as measured, so a run stopped part way still shows what it got
        figures[key] = value
        if lower:
            bounds.add(key)
        log(f"{name}: {key} {'>=' if lower else '='} {value:.2f}")

    def figure(key, f, runs, pick, per=1):
        """Times f `runs` times; `pick` chooses the figure from the times (warm-ups dropped)."""
        times, stopped = timed(f, runs, budget)
        if stopped is None:
            put(key, pick(times) / per)
        else:
            log(f"{name}: {key}: a run passed the {budget / 1000:.0f} s budget, stopped")
            put(key, stopped / per, lower=True)

    def last(times):
        return times[-1]

    def median_after_first(times):
        return median(times[1:])

    def composed(key, parts, value):
        """A figure composed of measured parts: a lower bound when any part is one."""
        put(key, value, lower=any(p in bounds for p in parts))
    # the bench's --figures: the groups to measure (all when absent)
    wanted = set(work.get("figures") or ["image", "prefill", "steps", "beam", "answer", "caption"])
    log(f"{name}: preparing the weights")
    image_side = ImageSide(config, w) if wanted & {"image", "answer", "caption"} else None
    size = config["vision_config"]["image_size"]
    for batch in work["batches"] if image_side else []:
        if name == "float32" and batch > 1 and not work.get("peerFloat32Batches"):
            continue  # minutes on two cores; `--peer-all` measures it
        pixels = torch.randn(batch, 3, size, size, dtype=dtype)
        runs = 2 if batch == 1 else 1
        log(f"{name}: image side, batch {batch}")
        figure(f"image{batch}", lambda: image_side(pixels), runs, last, per=batch)
    del image_side

    opt = Opt(config, w)
    d = config["text_config"]["hidden_size"]
    length = work["promptLength"]
    embeds = torch.randn(1, length, d, dtype=dtype) * 0.1
    if wanted & {"prefill", "caption"}:
        log(f"{name}: prefill")
        figure("prefill", lambda: opt.forward(embeds, None, 0), 2, last)
    token = torch.randn(1, 1, d, dtype=dtype) * 0.1
    for position in work["positions"] if "steps" in wanted else []:
        cache = opt.random_cache(1, position, dtype)
        log(f"{name}: step at position {position}")
        figure(f"step{position}", lambda: opt.forward(token, cache, position), 3, median_after_first)
    beams = work["beams"]
    cache = opt.random_cache(beams, length, dtype)
    rows = torch.tensor([max(0, i - 1) for i in range(beams)])
    tokens = torch.randn(beams, 1, d, dtype=dtype) * 0.1

    def beam_step():
        _, new = opt.forward(tokens, cache, length)
        # transformers' beam search reorders the cache with index_select each step
        return [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in new]

    if wanted & {"beam", "answer"}:
        log(f"{name}: {beams}-beam step")
        figure("beam", beam_step, 3, median_after_first)
    if wanted & {"beam", "caption"}:
        greedy = opt.random_cache(1, length, dtype)
        figure("stepPrompt", lambda: opt.forward(token, greedy, length), 3, median_after_first)

    def ratio(key, over, under):
        # a ratio of two measured figures; of a lower bound it would say nothing
        if over in figures and under in figures and not {over, under} & bounds:
            put(key, figures[over] / figures[under])

    ratio("positionRatio", f"step{work['positions'][-1]}", f"step{work['positions'][0]}")
    ratio("beamRatio", "beam", "stepPrompt")
    # what a user's generate() costs, from the same parts (its Python between calls is small beside them)
    if "answer" in wanted:
        log(f"{name}: prefill of {beams} rows")
        figure("beamPrefill", lambda: opt.forward(embeds.expand(beams, -1, -1), None, 0), 1, last)
        composed("answer", ["image1", "beamPrefill", "beam"],
                 figures["image1"] + figures.pop("beamPrefill") + max(0, work["answerTokens"] - 1) * figures["beam"])
    if "caption" in wanted:
        composed("caption", ["image1", "prefill", "stepPrompt"],
                 figures["image1"] + figures["prefill"] + (work["captionTokens"] - 1) * figures["stepPrompt"])
    return figures, sorted(bounds & set(figures))


def main():
    # as many threads as onnxruntime uses (Debian's OpenMP build may start with one)
    torch.set_num_threads(os.cpu_count() or 1)
    folder, work_json, dtypes = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    work = json.loads(work_json)
    signal.signal(signal.SIGALRM, over_budget)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "figures": {}, "lowerBounds": {}}
    for name in dtypes:
        out["figures"][name], out["lowerBounds"][name] = measure(folder, work, name)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
