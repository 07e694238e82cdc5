"""How the gateway's ONNX encoders (the PII token classifier, the MiniLM topic encoder) are built
and run on the CPU.

Why the residual LayerNorms are written as Add + LayerNormalization, not onnxruntime's fused
`SkipLayerNormalization` contrib op: on onnxruntime 1.32's CPU provider the fused kernel took
480 us for one (256, 384) activation where Add + LayerNormalization took 86 us, so the twelve of
MiniLM-L6 cost a quarter of a window of the classifier (23.1 ms -> 18.3 ms per 256 tokens,
9.7 -> 6.8 ms per 120, one thread; bench/results/minilm_ner.txt, "Sixth round"). onnxruntime's
graph optimizer fuses Add + LayerNormalization back into that op at ORT_ENABLE_ALL, so sessions
are made with that one fusion turned off (`DISABLED_OPTIMIZERS`); every other fusion stays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: onnxruntime graph transformers not to run (see the module docstring).
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


def cpu_session(model: str | Path, threads: int = 0, optimized_model_path: str | Path | None = None) -> Any:
    """An onnxruntime CPU session with every graph optimization but the SkipLayerNorm fusion.
    `threads` > 0 pins intra-op threads (one per analysis worker: each runs one text at a time);
    `optimized_model_path` saves the graph as optimized (to see which kernels will run)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if optimized_model_path:
        opts.optimized_model_filepath = str(optimized_model_path)
    return ort.InferenceSession(
        str(model), opts, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS
    )


def residual_layernorm(
    node: Callable[..., str], x: str, skip: str, weight: str, bias: str, dense_bias: str, out: str, eps: float
) -> str:
    """LayerNorm(x + dense_bias + skip), BERT's residual block, as plain ONNX ops (no dense_bias:
    LayerNorm(x + skip)). `node(op, inputs, output, **attrs)` appends a node and returns its
    output's name."""
    s = node("Add", [x, dense_bias], out + "_b") if dense_bias else x
    s = node("Add", [s, skip], out + "_sum")
    return node("LayerNormalization", [s, weight, bias], out, epsilon=eps, axis=-1)


def unfuse_skip_layernorm(model: Any) -> int:
    """Rewrite every SkipLayerNormalization node of an onnx ModelProto (in place) as Add (+ Add for
    its bias) + LayerNormalization; weights and every other node stay as they are. Returns how
    many nodes were rewritten. For models exported before the builders stopped emitting the op."""
    from onnx import helper

    nodes, done = [], 0
    for n in model.graph.node:
        if n.op_type != "SkipLayerNormalization":
            nodes.append(n)
            continue
        x, skip, weight, bias = n.input[:4]
        dense_bias = n.input[4] if len(n.input) > 4 and n.input[4] else ""
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-12)
        if len(n.output) > 1 and any(n.output[1:]):
            raise ValueError(f"{n.name or n.output[0]}: SkipLayerNormalization with extra outputs is not rewritten")
        out = n.output[0]

        def node(op: str, ins: list[str], name: str, **attrs: Any) -> str:
            nodes.append(helper.make_node(op, ins, [name], **attrs))
            return name

        residual_layernorm(node, x, skip, weight, bias, dense_bias, out, eps)
        done += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return done
