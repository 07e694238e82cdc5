"""The ONNX encoders run without onnxruntime's SkipLayerNormalization kernel (guardrails/onnx_ops.py:
on the CPU it cost a quarter of the PII classifier's time), and the rewrite that removes it from an
exported model keeps the model's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from guardrails.onnx_ops import cpu_session, unfuse_skip_layernorm  # noqa: E402
from guardrails.pii.token_ner import DEFAULT_MODEL  # noqa: E402

HIDDEN = 16


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _skip_layernorm_model(with_bias: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.normal(1, 0.1, HIDDEN).astype(np.float32), "g"),
        numpy_helper.from_array(rng.normal(0, 0.1, HIDDEN).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(0, 0.5, HIDDEN).astype(np.float32), "bias"),
    ]
    ins = ["x", "skip", "g", "b"] + (["bias"] if with_bias else [])
    node = helper.make_node("SkipLayerNormalization", ins, ["y"], domain="com.microsoft", epsilon=1e-12)
    graph = helper.make_graph(
        [node],
        "sln",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5, HIDDEN]) for n in ("x", "skip")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, HIDDEN])],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)], ir_version=10
    )


@pytest.mark.parametrize("with_bias", [True, False])
def test_unfused_model_computes_what_the_fused_one_did(tmp_path: Path, with_bias: bool) -> None:
    fused = _skip_layernorm_model(with_bias)
    onnx.save(fused, str(tmp_path / "fused.onnx"))
    plain = _skip_layernorm_model(with_bias)
    assert unfuse_skip_layernorm(plain) == 1
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    assert "SkipLayerNormalization" not in _ops(tmp_path / "plain.onnx")
    rng = np.random.default_rng(5)
    feed = {n: rng.normal(0, 2, (1, 5, HIDDEN)).astype(np.float32) for n in ("x", "skip")}
    want = cpu_session(tmp_path / "fused.onnx").run(None, feed)[0]
    got = cpu_session(tmp_path / "plain.onnx").run(None, feed)[0]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_the_session_does_not_fuse_the_layernorms_back(tmp_path: Path) -> None:
    # onnxruntime's optimizer turns Add + LayerNormalization into SkipLayerNormalization by itself
    plain = _skip_layernorm_model(with_bias=False)
    unfuse_skip_layernorm(plain)
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    cpu_session(tmp_path / "plain.onnx", optimized_model_path=tmp_path / "opt.onnx")
    assert "SkipLayerNormalization" not in _ops(tmp_path / "opt.onnx")
    assert "LayerNormalization" in _ops(tmp_path / "opt.onnx")


def test_the_shipped_classifier_runs_without_skip_layernorm(tmp_path: Path) -> None:
    assert "SkipLayerNormalization" not in _ops(DEFAULT_MODEL)
    cpu_session(DEFAULT_MODEL, threads=1, optimized_model_path=tmp_path / "opt.onnx")
    ops = _ops(tmp_path / "opt.onnx")
    assert "SkipLayerNormalization" not in ops
    assert {"QAttention", "LayerNormalization"} <= ops  # the other fusions still run
