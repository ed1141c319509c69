"""Hugging Face transformers: ``from_pretrained("oci://host/repo:tag")``, verified.

Two ways in, same checks:

    from oci_model_sign.integrations import transformers as oms_tf
    model = oms_tf.from_pretrained(AutoModel, "oci://host/models/bert:v1", policy=policy)

    with oms_tf.verified(policy=policy):
        model = AutoModel.from_pretrained("oci://host/models/bert:v1")   # unchanged user code
        tok = AutoTokenizer.from_pretrained("oci://host/models/bert:v1")

An ``oci://`` name becomes ``snapshot(ref, policy)``: the signature is verified against the
policy on every call, the model is downloaded only when its digest is not cached, and cached
files are re-checked against the signed digests (see ``oci_model_sign.snapshot``). The
framework then loads that folder with ``local_files_only=True``, so it never reaches a hub.
Names without ``oci://`` are passed to the framework untouched.

While a verified load runs, transformers' ``safe_open`` is replaced (in the modules that
import it) by the safetensors guard: every ``.safetensors`` file under the snapshot is checked
through the descriptor that is then mapped, so the weights loaded are the signed bytes even if
the cache is written to between the snapshot check and the load (``integrations.safetensors``).
The guard consults the digest cache by the open file's identity, so an unchanged file is copied
but not hashed again; a file written since the snapshot check has a new mtime/ctime and is.

Remaining gap: other files (``config.json``, tokenizer files, ``pytorch_model.bin``) are
checked by the snapshot just before transformers opens them by path; a process that can write
the cache folder in that window could still swap them. Prefer safetensors weights.

``verified()`` patches the ``from_pretrained`` of transformers' Auto classes and base classes
(models, tokenizers, configs, processors, feature extractors, image processors, generation
configs) and of their subclasses already imported, and restores them on exit. Only ``oci://``
names change behaviour; a thread that calls with an ``oci://`` name outside any ``verified()``
block of its own gets a ``UsageError`` (no policy), never an unverified load. With no
``policy`` argument, the trust policy file decides (``$OMSIGN_POLICY``, the user's, the
system's): its scope for the model must admit it, as for ``snapshot``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..model.digestcache import DigestCache
from ..snapshot import MISSING, Snapshot, check_policy, resolve_snapshot
from ..store.base import StoreOptions
from .safetensors import Guard, Mode, guarded_safe_open

SCHEME = "oci://"

# Modules of transformers that bind ``safe_open`` at import time (``from safetensors import``).
_SAFE_OPEN_USERS = (
    "transformers.modeling_utils",
    "transformers.modeling_layers",
    "transformers.integrations.accelerate",
)

# Where ``from_pretrained`` is defined: Auto classes define their own, subclasses inherit.
_ROOTS = (
    ("transformers.models.auto.auto_factory", "_BaseAutoModelClass"),
    ("transformers.models.auto.modeling_auto", "AutoModel"),
    ("transformers.models.auto.tokenization_auto", "AutoTokenizer"),
    ("transformers.models.auto.configuration_auto", "AutoConfig"),
    ("transformers.models.auto.processing_auto", "AutoProcessor"),
    ("transformers.models.auto.feature_extraction_auto", "AutoFeatureExtractor"),
    ("transformers.models.auto.image_processing_auto", "AutoImageProcessor"),
    ("transformers.modeling_utils", "PreTrainedModel"),
    ("transformers.tokenization_utils_base", "PreTrainedTokenizerBase"),
    ("transformers.configuration_utils", "PreTrainedConfig"),
    ("transformers.processing_utils", "ProcessorMixin"),
    ("transformers.feature_extraction_utils", "FeatureExtractionMixin"),
    ("transformers.image_processing_base", "ImageProcessingMixin"),
    ("transformers.generation.configuration_utils", "GenerationConfig"),
)


@dataclass(frozen=True)
class _Settings:
    policy: Any
    allow_unsigned: bool
    options: StoreOptions | None
    cache_dir: str | Path | None
    mode: Mode | None


_current: contextvars.ContextVar[_Settings | None] = contextvars.ContextVar("omsign_verified", default=None)
_lock = threading.RLock()
_patch_depth = 0
_saved: list[tuple[type, str, Any]] = []
_guard = Guard()
_guard_depth: dict[str, int] = {}
_SAVED_SAFE_OPEN: list[tuple[Any, Any]] = []
_DIGESTS: list[DigestCache] = []  # the guard's digest cache while any guarded load runs


def is_oci_name(name: object) -> bool:
    return isinstance(name, str) and name.startswith(SCHEME)


def from_pretrained(
    cls: Any,
    name: str | Path,
    *args: Any,
    policy: Any = MISSING,
    allow_unsigned: bool = False,
    options: StoreOptions | None = None,
    oci_cache_dir: str | Path | None = None,
    weights_mode: Mode | None = None,
    **kwargs: Any,
) -> Any:
    """``cls.from_pretrained(name, *args, **kwargs)``; an ``oci://`` name is verified first.

    ``policy`` as for ``snapshot`` (required; ``None`` only with ``allow_unsigned=True``);
    ``oci_cache_dir`` overrides the model cache folder; ``weights_mode`` picks the
    safetensors guard's mode (``"sealed"`` or ``"mmap"``).
    """
    if not is_oci_name(name):
        return cls.from_pretrained(name, *args, **kwargs)
    settings = _Settings(policy, allow_unsigned, options, oci_cache_dir, weights_mode)
    return _load(settings, lambda path, **kw: cls.from_pretrained(path, *args, **kw), str(name), kwargs)


def _load(settings: _Settings, call: Any, name: str, kwargs: dict[str, Any]) -> Any:
    """Snapshot ``name``, then ``call(path, **kwargs)`` offline with the weights guard on."""
    check_policy(settings.policy, settings.allow_unsigned)
    for key in ("revision", "subfolder"):
        if kwargs.get(key):
            raise UsageError(f"{key}= does not apply to an oci:// model",
                             hint="the tag or @digest in the reference says which version to load")
    kwargs = dict(kwargs)
    kwargs.pop("cache_dir", None)  # the Hugging Face cache is not used for oci:// models
    if kwargs.get("disable_mmap"):
        kwargs["disable_mmap"] = False  # the guard reads the weights itself (sealed copy)
    kwargs["local_files_only"] = True
    snap = resolve_snapshot(
        name[len(SCHEME):],
        settings.policy,
        allow_unsigned=settings.allow_unsigned,
        options=settings.options,
        cache_dir=settings.cache_dir,
    )
    with _guarded(snap, settings.mode):
        return call(str(snap.path), **kwargs)


@contextlib.contextmanager
def _guarded(snap: Snapshot, mode: Mode | None) -> Iterator[None]:
    """Route transformers' ``safe_open`` through the guard while this snapshot loads."""
    key = str(snap.path)
    saved: list[tuple[Any, Any]] = []
    with _lock:
        if not _guard:
            _DIGESTS[:] = [DigestCache()]
            for module_name in _SAFE_OPEN_USERS:
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    continue
                original = getattr(module, "safe_open", None)
                if original is None:
                    continue
                saved.append((module, original))
                module.safe_open = guarded_safe_open(  # type: ignore[attr-defined]
                    _guard, original, mode=mode, digest_cache=_DIGESTS[0]
                )
            _SAVED_SAFE_OPEN.extend(saved)
        _guard_depth[key] = _guard_depth.get(key, 0) + 1
        _guard.add(snap.path, snap.files)
    try:
        yield
    finally:
        with _lock:
            _guard_depth[key] -= 1
            if not _guard_depth[key]:
                del _guard_depth[key]
                _guard.remove(snap.path)
            if not _guard:
                for module, original in _SAVED_SAFE_OPEN:
                    module.safe_open = original
                _SAVED_SAFE_OPEN.clear()
                for cache in _DIGESTS:
                    cache.close()
                _DIGESTS.clear()


@contextlib.contextmanager
def verified(
    policy: Any = MISSING,
    *,
    allow_unsigned: bool = False,
    options: StoreOptions | None = None,
    cache_dir: str | Path | None = None,
    weights_mode: Mode | None = None,
) -> Iterator[None]:
    """Within the block, ``X.from_pretrained("oci://…")`` loads verified; nothing else changes."""
    check_policy(policy, allow_unsigned)
    token = _current.set(_Settings(policy, allow_unsigned, options, cache_dir, weights_mode))
    _patch()
    try:
        yield
    finally:
        _unpatch()
        _current.reset(token)


def _wrap(func: Any) -> Any:
    @functools.wraps(func)
    def from_pretrained(cls: Any, *args: Any, **kwargs: Any) -> Any:
        name = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        if not is_oci_name(name):
            return func(cls, *args, **kwargs)
        settings = _current.get()
        if settings is None:
            raise UsageError(f"{name} is loaded outside a verified() block of this thread, with no policy",
                             hint="use oci_model_sign.integrations.transformers.verified(policy=...)")
        rest = args[1:]
        kwargs.pop("pretrained_model_name_or_path", None)
        return _load(settings, lambda path, **kw: func(cls, path, *rest, **kw), str(name), kwargs)

    from_pretrained.__omsign_wrapped__ = func  # type: ignore[attr-defined]
    return from_pretrained


def _classes() -> list[type]:
    roots: list[type] = []
    for module_name, attr in _ROOTS:
        try:
            value = getattr(importlib.import_module(module_name), attr, None)
        except ImportError:
            continue
        if isinstance(value, type):
            roots.append(value)
    seen: set[type] = set()
    stack = list(roots)
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
    return [c for c in seen if "from_pretrained" in c.__dict__]


def _patch() -> None:
    global _patch_depth
    with _lock:
        _patch_depth += 1
        if _patch_depth > 1:
            return
        try:
            importlib.import_module("transformers")
        except ImportError as exc:
            _patch_depth -= 1
            raise UsageError("transformers is not installed", hint="pip install 'oci-model-sign[ml]'") from exc
        for cls in _classes():
            raw = cls.__dict__["from_pretrained"]
            if isinstance(raw, classmethod) and not hasattr(raw.__func__, "__omsign_wrapped__"):
                _saved.append((cls, "from_pretrained", raw))
                cls.from_pretrained = classmethod(_wrap(raw.__func__))  # type: ignore[attr-defined]


def _unpatch() -> None:
    global _patch_depth
    with _lock:
        _patch_depth -= 1
        if _patch_depth:
            return
        while _saved:
            cls, attr, raw = _saved.pop()
            setattr(cls, attr, raw)


__all__ = ["SCHEME", "from_pretrained", "is_oci_name", "verified"]
