"""Synthetic models for the benchmark: incompressible sharded weights plus a real model's small files.

Random bytes, not zeros: a compressing or deduplicating tool must not look faster than it is.
Usage: ``python bench/make_models.py --size 2G DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK = 4 * 2**20
SHARD_MAX = 512 * 2**20
MIN_SHARDS = 4


def parse_size(text: str) -> int:
    """``2G``, ``512M``, ``0.25G``, ``1GB`` or plain bytes -> bytes (binary units)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(float(t))


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} B"


@dataclass
class Model:
    path: Path
    shards: list[Path]
    small_files: list[Path]

    @property
    def files(self) -> list[Path]:
        return sorted(self.shards + self.small_files)

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def shard_plan(size: int) -> list[int]:
    """At least 4 shards, none above 512 MiB: 2 GiB -> 4 x 512 MiB, 4 GiB -> 8 x 512 MiB."""
    count = max(MIN_SHARDS, math.ceil(size / SHARD_MAX))
    base = size // count
    sizes = [base] * count
    sizes[-1] += size - base * count
    return sizes


def write_random(path: Path, size: int, rng: np.random.Generator) -> None:
    """Write ``size`` random bytes to a new file, then rename over ``path`` (new inode, like real
    checkpoint writers do): hard links to the old content stay untouched."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            f.write(rng.bytes(n))
            left -= n
    os.replace(tmp, path)


def shard_name(i: int, count: int) -> str:
    return f"model-{i + 1:05d}-of-{count:05d}.safetensors"


def _small_files(root: Path, shard_names: list[str], sizes: list[int], rng: np.random.Generator) -> list[Path]:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_attention_heads": 32,
        "num_hidden_layers": 22,
        "num_key_value_heads": 4,
        "vocab_size": 32000,
        "torch_dtype": "bfloat16",
        "bench_note": "synthetic model written by omsign bench/make_models.py",
    }
    # about 1.5 MB like a real BPE tokenizer.json; content random so it does not compress away
    vocab = {f"tok{i}_{rng.integers(0, 2**31)}": i for i in range(32000)}
    merges = [f"m{rng.integers(0, 2**20)} n{rng.integers(0, 2**20)}" for _ in range(32000)]
    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": merges}}
    generation = {"bos_token_id": 1, "eos_token_id": 2, "max_length": 2048, "temperature": 0.7}
    index = {
        "metadata": {"total_size": sum(sizes)},
        "weight_map": {f"layers.{i}.weight": name for i, name in enumerate(shard_names)},
    }
    files = {
        "config.json": json.dumps(config, indent=2),
        "tokenizer.json": json.dumps(tokenizer),
        "generation_config.json": json.dumps(generation, indent=2),
        "model.safetensors.index.json": json.dumps(index, indent=2),
        "README.md": "# bench model\n\nRandom weights for omsign's benchmark; not a usable model.\n",
    }
    out = []
    for name, text in files.items():
        p = root / name
        p.write_text(text + "\n")
        out.append(p)
    return out


def make_model(root: Path, size: int, *, seed: int | None = None) -> Model:
    """Create (replacing) a model folder of about ``size`` bytes of weights."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    sizes = shard_plan(size)
    names = [shard_name(i, len(sizes)) for i in range(len(sizes))]
    shards = []
    for name, n in zip(names, sizes, strict=True):
        write_random(root / name, n, rng)
        shards.append(root / name)
    small = _small_files(root, names, sizes, rng)
    return Model(root, shards, small)


def load_model(root: Path) -> Model:
    shards = sorted(root.glob("model-*-of-*.safetensors"))
    small = sorted(p for p in root.iterdir() if p.is_file() and p not in shards)
    return Model(root, shards, small)


def rewrite_shard(shard: Path, *, seed: int | None = None) -> None:
    """Replace one shard with new random bytes of the same size (a fine-tune touching one file)."""
    write_random(shard, shard.stat().st_size, np.random.default_rng(seed))


def read_all(model: Model) -> int:
    """Read every file once (page-cache warm-up applied identically before each tool's runs)."""
    total = 0
    for p in model.files:
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                total += len(chunk)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--size", default="2G", help="total weight bytes, e.g. 256M, 1G, 2G")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    model = make_model(args.dir, parse_size(args.size), seed=args.seed)
    print(f"{model.path}: {len(model.files)} files, {human(model.total_bytes)}")


if __name__ == "__main__":
    main()
