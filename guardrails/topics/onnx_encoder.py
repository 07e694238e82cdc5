"""The same MiniLM encoder as `embedder.MiniLMEmbedder`, run by onnxruntime with int8 weights.

The ONNX graph is written here from the safetensors weights with `onnx.helper` (no torch, no
download), quantized with onnxruntime's dynamic int8 quantization, and cached on disk keyed by
the weights' hash. Several text units (the prompt's sentences) go through one call, packed into
one row with a block-diagonal attention mask: each unit attends only to itself and its positions
restart at 0, so it is encoded as if alone, at the cost of one sequence of their total length.
int8 matmuls make it several times faster than fp32 numpy on a CPU; embeddings stay within
cosine > 0.99 of the fp32 ones (checked by tests/unit/test_embedder.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..onnx_ops import cpu_session, residual_layernorm
from .embedder import default_model_dir

log = logging.getLogger("mixguard.topics")

CACHE_DIR = "~/.cache/mixguard"
GRAPH_VERSION = "packed3"  # part of the cached file's name: a changed graph is built anew
# The ONNX IR version the graphs are written with. onnx writes its own newest by default, which an
# older onnxruntime beside it may not read ("Unsupported model IR version: 14, max supported IR
# version: 13" was seen with onnx 1.23 and onnxruntime 1.30); 10 is read by onnxruntime >= 1.18.
IR_VERSION = 10


def _build_graph(model_dir: Path, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    cfg = json.loads((model_dir / "config.json").read_text())
    w = {
        k: v.astype(np.float32)
        for k, v in load_file(str(model_dir / "model.safetensors")).items()
        if v.dtype != np.int64
    }
    heads, dim = int(cfg["num_attention_heads"]), int(cfg["hidden_size"])
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    inits, nodes = [], []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    word = const("word", w["embeddings.word_embeddings.weight"])
    pos = const("pos", w["embeddings.position_embeddings.weight"])
    type0 = const("type0", w["embeddings.token_type_embeddings.weight"][0])
    x = node("Gather", [word, "input_ids"], "we")
    x = node("Add", [x, node("Gather", [pos, "position_ids"], "pe")], "e1")
    x = node("Add", [x, type0], "e2")
    x = node(
        "LayerNormalization",
        [x, const("eln_w", w["embeddings.LayerNorm.weight"]), const("eln_b", w["embeddings.LayerNorm.bias"])],
        "emb",
        epsilon=eps,
        axis=-1,
    )
    # onnxruntime's fused contrib ops (com.microsoft) Attention and BiasGelu; the residual LayerNorms
    # as plain ops (guardrails/onnx_ops.py says why)
    ms = {"domain": "com.microsoft"}
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        n = f"l{i}_"
        qkv_w = np.concatenate([w[p + f"attention.self.{k}.weight"] for k in ("query", "key", "value")]).T
        qkv_b = np.concatenate([w[p + f"attention.self.{k}.bias"] for k in ("query", "key", "value")])
        c = node(
            "Attention",
            [x, const(n + "qkv_w", qkv_w), const(n + "qkv_b", qkv_b), "mask_index"],
            n + "ctx",
            num_heads=heads,
            **ms,
        )
        o = node("MatMul", [c, const(n + "o_w", w[p + "attention.output.dense.weight"].T)], n + "o_m")
        x = residual_layernorm(
            node,
            o,
            x,
            const(n + "ln1_w", w[p + "attention.output.LayerNorm.weight"]),
            const(n + "ln1_b", w[p + "attention.output.LayerNorm.bias"]),
            const(n + "o_b", w[p + "attention.output.dense.bias"]),
            n + "x1",
            eps,
        )
        h = node("MatMul", [x, const(n + "i_w", w[p + "intermediate.dense.weight"].T)], n + "i_m")
        h = node("BiasGelu", [h, const(n + "i_b", w[p + "intermediate.dense.bias"])], n + "gelu", **ms)
        f = node("MatMul", [h, const(n + "f_w", w[p + "output.dense.weight"].T)], n + "f_m")
        x = residual_layernorm(
            node,
            f,
            x,
            const(n + "ln2_w", w[p + "output.LayerNorm.weight"]),
            const(n + "ln2_b", w[p + "output.LayerNorm.bias"]),
            const(n + "f_b", w[p + "output.dense.bias"]),
            n + "x2",
            eps,
        )
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    graph = helper.make_graph(
        nodes,
        "minilm",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "n"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["n"]),
            # (batch, n, n): 1 where a token may attend to another (block-diagonal for packed units)
            helper.make_tensor_value_info("mask_index", TensorProto.INT32, ["b", "n", "n"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["b", "n", dim])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)],
        ir_version=IR_VERSION,
    )
    onnx.save(model, str(path))


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def cached_int8_model(name: str, build: Callable[[Path], None], cache_dir: str | None = None) -> Path:
    """Path of `name`.onnx, an int8 model quantized from the fp32 graph that `build(path)` writes;
    built once (a few seconds) and cached, written atomically so concurrent workers never read
    a half-written file."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir = Path(os.path.expanduser(cache_dir or CACHE_DIR))
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.onnx"
    if final.is_file():
        return final
    fp32 = out_dir / f".{name}-{os.getpid()}-fp32.onnx"
    tmp = out_dir / f".{name}-{os.getpid()}-int8.onnx"
    log.info("building the int8 topic encoder %s (once)", final)
    try:
        build(fp32)
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Attention"],
            per_channel=True,
            extra_options={"DefaultTensorType": 1},
        )  # 1 = FLOAT: contrib ops lack shape inference
        os.replace(tmp, final)
    finally:
        for p in (fp32, tmp):
            p.unlink(missing_ok=True)
    return final


def build_int8_model(model_dir: Path, cache_dir: str | None = None) -> Path:
    """Path of the quantized MiniLM model, building it once if it is not cached."""
    return cached_int8_model(
        f"minilm-{file_hash(model_dir / 'model.safetensors')}-int8-{GRAPH_VERSION}",
        lambda path: _build_graph(model_dir, path),
        cache_dir,
    )


class OnnxMiniLM:
    """encode(text) -> unit vector; encode_many(texts) -> (len, dim) in one batched call."""

    def __init__(self, model_dir: str | Path | None = None, max_tokens: int = 256, threads: int = 0) -> None:
        from tokenizers import Tokenizer

        d = Path(model_dir) if model_dir else default_model_dir()
        self.session = cpu_session(build_int8_model(d), threads)
        self.tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    #: Tokens per packed call: attention over a packed row is computed in full (the mask only
    #: hides the other units), so long rows cost quadratically; 128 keeps that small.
    PACK_TOKENS = 128

    def encode_many(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of several texts, packed into as few calls as fit PACK_TOKENS each (each
        text attends only to itself and has its own positions)."""
        encs = [self.tokenizer.encode(t).ids for t in texts]
        out = np.empty((len(encs), self.dim), np.float32)
        group: list[int] = []
        size = 0
        for i, e in enumerate(encs):
            if group and size + len(e) > self.PACK_TOKENS:
                out[group] = self._packed([encs[j] for j in group])
                group, size = [], 0
            group.append(i)
            size += len(e)
        if group:
            out[group] = self._packed([encs[j] for j in group])
        return out

    def _packed(self, encs: list[list[int]]) -> np.ndarray:
        n = sum(len(e) for e in encs)
        ids = np.empty((1, n), np.int64)
        pos = np.empty(n, np.int64)
        mask = np.zeros((1, n, n), np.int32)
        seg = np.zeros((len(encs), n), np.float32)
        at = 0
        for i, e in enumerate(encs):
            k = len(e)
            ids[0, at : at + k] = e
            pos[at : at + k] = np.arange(k)
            mask[0, at : at + k, at : at + k] = 1
            seg[i, at : at + k] = 1.0 / k
            at += k
        hidden = self.session.run(["hidden"], {"input_ids": ids, "position_ids": pos, "mask_index": mask})[0][0]
        pooled = seg @ hidden  # mean over each text's own tokens
        unit: np.ndarray = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return unit

    def encode(self, text: str) -> np.ndarray:
        vec: np.ndarray = self.encode_many([text])[0]
        return vec
