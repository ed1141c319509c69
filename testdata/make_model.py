"""Write ``testdata/tiny-model/``: a small, real-looking Hugging Face style model, deterministically.

Two safetensors shards (written by the ``safetensors`` package from seeded numpy tensors) with
their index, config and generation config, a small BPE tokenizer, a model card with YAML front
matter, a licence and a nested ``code/`` folder. Running it twice gives identical bytes, so the
committed output doubles as a regression fixture (its digests can be pinned in tests).

    .venv/bin/python testdata/make_model.py [OUT_DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN = 192
LAYERS = 2
VOCAB = 512
INTERMEDIATE = 384
SEED = 20260101


def _json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    out["model.embed_tokens.weight"] = rng.standard_normal((VOCAB, HIDDEN), dtype=np.float32) * 0.02
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[p + f"self_attn.{proj}.weight"] = rng.standard_normal((HIDDEN, HIDDEN), dtype=np.float32) * 0.02
        out[p + "mlp.gate_proj.weight"] = rng.standard_normal((INTERMEDIATE, HIDDEN), dtype=np.float32) * 0.02
        out[p + "mlp.up_proj.weight"] = rng.standard_normal((INTERMEDIATE, HIDDEN), dtype=np.float32) * 0.02
        out[p + "mlp.down_proj.weight"] = rng.standard_normal((HIDDEN, INTERMEDIATE), dtype=np.float32) * 0.02
        out[p + "input_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
        out[p + "post_attention_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    out["model.norm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    out["lm_head.weight"] = rng.standard_normal((VOCAB, HIDDEN), dtype=np.float32) * 0.02
    return out


def _weights(out: Path) -> None:
    tensors = _tensors()
    shard1 = {k: v for k, v in tensors.items() if k.startswith(("model.embed_tokens", "model.layers.0."))}
    shard2 = {k: v for k, v in tensors.items() if k not in shard1}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map: dict[str, str] = {}
    for name, shard in zip(names, (shard1, shard2), strict=True):
        save_file({k: np.ascontiguousarray(v) for k, v in shard.items()}, str(out / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    total = sum(v.nbytes for v in tensors.values())
    _json(out / "model.safetensors.index.json",
          {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


def _tokenizer() -> dict[str, object]:
    # A byte-level BPE vocabulary: the 256 byte tokens, then merges of frequent pairs.
    byte_tokens = [chr(c) if 33 <= c <= 126 else f"<0x{c:02X}>" for c in range(256)]
    merges = ["t h", "th e", "i n", "a n", "e r", "o n", "r e", "an d", "i s", "e d",
              "o r", "in g", "a t", "e n", "m o", "mo d", "mod e", "mode l", "s i", "si g"]
    vocab: dict[str, int] = {"<s>": 0, "</s>": 1, "<unk>": 2, "<pad>": 3}
    for tok in byte_tokens:
        vocab.setdefault(tok, len(vocab))
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for t, i in (("<s>", 0), ("</s>", 1), ("<unk>", 2), ("<pad>", 3))
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": True,
                  "vocab": vocab, "merges": merges},
    }


README = """---
license: apache-2.0
language:
- en
library_name: transformers
pipeline_tag: text-generation
tags:
- tiny
- test-fixture
model-index:
- name: tiny-model
  results: []
---

# tiny-model

A 2-layer, 192-wide Llama-style decoder with random weights. It exists to exercise packing,
signing and verifying ML models in OCI registries; it generates nonsense.

## Files

| file | what |
|---|---|
| `model-0000N-of-00002.safetensors` | weights, two shards |
| `model.safetensors.index.json` | which tensor is in which shard |
| `config.json`, `generation_config.json` | architecture and sampling defaults |
| `tokenizer.json`, `tokenizer_config.json` | a 280-token byte-level BPE |
| `code/` | example modelling code (nested folders) |

Regenerate with `python testdata/make_model.py`; the output is byte-for-byte reproducible.
"""

LICENSE = """                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   Licensed under the Apache License, Version 2.0 (the "License");
   you may not use this file except in compliance with the License.
   You may obtain a copy of the License at

       http://www.apache.org/licenses/LICENSE-2.0

   Unless required by applicable law or agreed to in writing, software
   distributed under the License is distributed on an "AS IS" BASIS,
   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
   See the License for the specific language governing permissions and
   limitations under the License.
"""

MODELING = '''"""Minimal modelling code for tiny-model (illustrative; not imported by omsign)."""

from __future__ import annotations

from .utils.helpers import rms_norm


class TinyConfig:
    def __init__(self, hidden_size: int = 192, num_hidden_layers: int = 2, vocab_size: int = 512) -> None:
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.vocab_size = vocab_size


def forward_norm(values: list[float], weight: list[float]) -> list[float]:
    return rms_norm(values, weight)
'''

HELPERS = '''"""Numeric helpers for tiny-model."""

from __future__ import annotations

import math


def rms_norm(values: list[float], weight: list[float], eps: float = 1e-6) -> list[float]:
    mean_square = sum(v * v for v in values) / max(len(values), 1)
    scale = 1.0 / math.sqrt(mean_square + eps)
    return [v * scale * w for v, w in zip(values, weight)]
'''


def make(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _weights(out)
    _json(out / "config.json", {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS, "num_attention_heads": 4,
        "num_key_value_heads": 4, "vocab_size": VOCAB, "max_position_embeddings": 512,
        "rms_norm_eps": 1e-06, "torch_dtype": "float32", "bos_token_id": 0, "eos_token_id": 1,
        "tie_word_embeddings": False, "transformers_version": "4.44.0",
    })
    _json(out / "generation_config.json", {"bos_token_id": 0, "eos_token_id": 1, "do_sample": True,
                                           "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64})
    _json(out / "tokenizer.json", _tokenizer())
    _json(out / "tokenizer_config.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                          "pad_token": "<pad>", "model_max_length": 512,
                                          "tokenizer_class": "PreTrainedTokenizerFast"})
    (out / "README.md").write_text(README, encoding="utf-8")
    (out / "LICENSE").write_text(LICENSE, encoding="utf-8")
    (out / "code" / "utils").mkdir(parents=True)
    (out / "code" / "modeling_tiny.py").write_text(MODELING, encoding="utf-8")
    (out / "code" / "utils" / "helpers.py").write_text(HELPERS, encoding="utf-8")
    for path in out.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "tiny-model"
    make(target)
    total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"wrote {target} ({total} bytes)")
