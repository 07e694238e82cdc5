"""Writes Mixtral 8x7B's SentencePiece tokenizer into a model folder, so SGLang loads the model with no hub access.

The `tokenizer.model` comes from the mistral_common wheel (Mistral's own package ships it); the config names
LlamaTokenizer, which transformers converts at load, and a Mixtral-style chat template
(`[INST] ... [/INST]`), so chat prompts tokenize as Mixtral Instruct's do and prefix caching sees real ids.
Usage: python bench/gpu/make_tokenizer.py MODEL_DIR
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] in ['user','system'] %}"
    "{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "mistral_common", "-d", tmp], check=True
        )
        wheel = glob.glob(tmp + "/mistral_common-*.whl")[0]
        (out / "tokenizer.model").write_bytes(zipfile.ZipFile(wheel).read("mistral_common/data/tokenizer.model.v1"))
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "chat_template": TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
