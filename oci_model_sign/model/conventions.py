"""Which file of a model is which, and which media type convention a push writes.

omsign writes CNCF ModelPack artifacts by default (one raw layer per file) and reads ModelPack
(both the current ``vnd.cncf`` and the pre-2025-06 ``vnd.cnai`` prefixes), plain ORAS
artifacts, KitOps ModelKits and Docker Model Runner layers; the type strings themselves live
in ``oci.mediatypes``. A ``MediaTypes`` convention decides what a push writes, so
``--media-types oras`` can produce an artifact that any ORAS client pulls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from ..errors import UsageError
from ..oci.mediatypes import (
    FORMAT_RAW,
    FORMAT_TAR,
    FORMAT_TAR_GZIP,
    MODEL_ARTIFACT_TYPE,
    MODEL_CONFIG,
    OCI_EMPTY,
    OCI_LAYER_TAR,
    OCI_LAYER_TAR_GZIP,
    OCI_LAYER_TAR_ZSTD,
    ORAS_DEFAULT_ARTIFACT_TYPE,
    ROLE_CODE,
    ROLE_DATASET,
    ROLE_DOC,
    ROLE_WEIGHT,
    ROLE_WEIGHT_CONFIG,
    model_layer_type,
)

# -- classification ----------------------------------------------------------------------------
WEIGHT_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ggml", ".onnx", ".onnx_data", ".h5",
     ".msgpack", ".ckpt", ".pkl", ".npz", ".npy", ".tflite", ".mlmodel", ".keras", ".pb"}
)
CONFIG_NAMES = frozenset(
    {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
     "special_tokens_map.json", "vocab.txt", "merges.txt", "tokenizer.model", "vocab.json",
     "added_tokens.json", "preprocessor_config.json", "chat_template.jinja", "params.json"}
)
CONFIG_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".jinja", ".tiktoken", ".toml"})
DOC_PREFIXES = ("readme", "license", "licence", "notice", "copying", "authors", "citation",
                "changelog", "model_card", "modelcard", "use_policy")
DOC_SUFFIXES = frozenset({".md", ".txt", ".pdf", ".rst", ".html", ".png", ".jpg", ".jpeg",
                          ".gif", ".svg", ".webp"})
CODE_SUFFIXES = frozenset({".py", ".sh", ".ipynb", ".js", ".ts", ".go", ".rs", ".c", ".cc",
                           ".cpp", ".h", ".hpp", ".cu", ".r", ".jl", ".lua", ".java"})
DATASET_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".jsonl", ".arrow", ".feather",
                              ".avro", ".orc"})


def classify_certain(relpath: str) -> tuple[str, bool]:
    """(role, certain): the ModelPack role of a file and whether the rule was an exact one.

    Unknown files become ``doc`` (the role no runtime loads as weights or executes), with
    ``certain`` False so the layer is marked ``org.cncf.model.file.mediatype.untested``.
    """
    name = PurePosixPath(relpath).name
    lower = name.lower()
    suffix = PurePosixPath(lower).suffix
    if lower in CONFIG_NAMES:
        return ROLE_WEIGHT_CONFIG, True
    if lower.startswith(DOC_PREFIXES):
        return ROLE_DOC, True
    if suffix in WEIGHT_SUFFIXES or ".onnx_data" in lower:
        return ROLE_WEIGHT, True
    if suffix in DATASET_SUFFIXES:
        return ROLE_DATASET, True
    if suffix in CONFIG_SUFFIXES:
        return ROLE_WEIGHT_CONFIG, True
    if suffix in CODE_SUFFIXES:
        return ROLE_CODE, True
    if suffix in DOC_SUFFIXES:
        return ROLE_DOC, True
    if lower.endswith(".model"):  # sentencepiece models under other names
        return ROLE_WEIGHT_CONFIG, False
    return ROLE_DOC, False


def classify(relpath: str) -> str:
    """The ModelPack role (weight, weight.config, doc, code, dataset) of a file path."""
    return classify_certain(relpath)[0]


_FORMAT_BY_SUFFIX = {
    ".safetensors": "safetensors", ".gguf": "gguf", ".onnx": "onnx", ".onnx_data": "onnx",
    ".pt": "pt", ".pth": "pt", ".bin": "pt", ".ckpt": "pt", ".h5": "h5", ".keras": "keras",
    ".tflite": "tflite", ".msgpack": "flax", ".mlmodel": "coreml", ".pkl": "pickle",
    ".npz": "numpy", ".npy": "numpy",
}


def weight_format(relpath: str) -> str | None:
    """The ModelPack ``config.format`` a weight file suggests (safetensors, gguf, onnx, pt...)."""
    return _FORMAT_BY_SUFFIX.get(PurePosixPath(relpath.lower()).suffix)


# -- conventions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaTypes:
    """What a push writes: artifact type, config type and layer types/annotations.

    ``modelpack`` (default): ModelPack types with filepath, title and file metadata
    annotations. ``oras``: the ORAS CLI defaults (``application/vnd.oci.image.layer.v1.tar``
    per file, title only, empty config), for clients that only know ORAS.
    """

    name: str
    artifact_type: str
    config_media_type: str
    modelpack_annotations: bool

    def layer_type(self, role: str, fmt: str) -> str:
        """The media type of a layer holding one file (``raw``) or a folder (a tar format)."""
        if self.name == "modelpack":
            return model_layer_type(role, fmt)
        if fmt in (FORMAT_RAW, FORMAT_TAR):
            return OCI_LAYER_TAR
        if fmt == FORMAT_TAR_GZIP:
            return OCI_LAYER_TAR_GZIP
        return OCI_LAYER_TAR_ZSTD


MODELPACK = MediaTypes("modelpack", MODEL_ARTIFACT_TYPE, MODEL_CONFIG, True)
ORAS = MediaTypes("oras", ORAS_DEFAULT_ARTIFACT_TYPE, OCI_EMPTY, False)
CONVENTIONS = {c.name: c for c in (MODELPACK, ORAS)}


def get_media_types(name: str) -> MediaTypes:
    """The convention named by ``--media-types``; UsageError for an unknown name."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise UsageError(
            f"unknown media type convention {name!r}",
            hint=f"use one of {', '.join(sorted(CONVENTIONS))}",
        ) from None


# -- datasets ---------------------------------------------------------------------------------
ARTIFACT_KINDS = ("auto", "model", "dataset")
DATASET_SHARD_SUFFIXES = frozenset({".parquet", ".jsonl", ".arrow", ".csv"})


def looks_like_dataset(relpaths: list[str]) -> bool:
    """True when every file is a dataset shard (parquet, jsonl, arrow, csv) or a document.

    A dataset card (README.md) or a licence next to the shards does not make a folder a model;
    one weight, config or code file does.
    """
    shards = 0
    for rel in relpaths:
        suffix = PurePosixPath(rel.lower()).suffix
        if suffix in DATASET_SHARD_SUFFIXES:
            shards += 1
        elif classify(rel) != ROLE_DOC:
            return False
    return shards > 0


def for_artifact_kind(types: MediaTypes, kind: str, relpaths: list[str]) -> MediaTypes:
    """``types`` with the dataset artifactType when ``kind`` is dataset (or auto and it looks like one)."""
    from dataclasses import replace

    from ..oci.mediatypes import DATASET_ARTIFACT_TYPE

    if kind not in ARTIFACT_KINDS:
        raise UsageError(f"unknown artifact type {kind!r}", hint=f"use one of {', '.join(ARTIFACT_KINDS)}")
    if kind == "dataset" or (kind == "auto" and looks_like_dataset(relpaths)):
        return replace(types, artifact_type=DATASET_ARTIFACT_TYPE)
    return types
