"""What a push learns from outside the model folder, so it uploads only what is really new.

Two sources, both only hints (the store checks every byte it accepts, so a wrong hint costs a
round trip, never a wrong model):

* the blob-location cache (``store.blobcache``): a digest seen in another repository of the
  same registry is mounted from there instead of uploaded; a refused mount (stale entry,
  blob deleted, no pull access there) drops the entry and the push uploads as usual;
* the manifest the target tag holds now: on a machine without a digest cache (a fresh CI
  runner), a file whose path and size match a layer of that manifest is hashed first, and if
  the registry has that digest (one HEAD) it is not sent at all. Other files are still hashed
  while uploading, in one read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import OmsignError, RegistryError
from .reference import Reference
from .store.base import Store

if TYPE_CHECKING:
    from .store.blobcache import BlobLocationCache
    from .transfer import PushResult


def registry_url(store: Store) -> str | None:
    """The registry a store lives on (its base URL), None for layouts and archives."""
    url = getattr(store, "base_url", None)
    return url if isinstance(url, str) else None


def current_files(store: Store, ref: Reference) -> dict[str, tuple[int, str]]:
    """path -> (size, digest) of the single-file layers the target tag names now ({} if none)."""
    from .model.unpack import parse_model_manifest

    if ref.tag is None or ref.digest is not None:
        return {}
    try:
        manifest = store.get_manifest(ref.tag)
        model = parse_model_manifest(manifest.data, store.limits)
    except OmsignError:
        return {}  # no such tag yet, or not a model: nothing to learn
    return {str(e.path): (e.descriptor.size, e.descriptor.digest) for e in model.files if not e.is_tar}


class PushHints:
    """``transfer.PushHooks`` for one push: expected digests from the tag, mounts from the cache."""

    def __init__(self, store: Store, ref: Reference, *, use_cache: bool = True) -> None:
        from .store.blobcache import BlobLocationCache

        self.store = store
        self.url = registry_url(store)
        self.expected = current_files(store, ref)
        self.cache: BlobLocationCache | None = BlobLocationCache() if use_cache and self.url else None

    def wants_digest(self, relpath: str, size: int) -> bool:
        known = self.expected.get(relpath)
        return known is not None and known[0] == size

    def mount(self, digest: str) -> bool:
        if self.cache is None or self.url is None:
            return False
        for repository in self.cache.repositories(self.url, digest):
            if repository == self.store.ref.repository:
                continue
            try:
                if self.store.mount_blob(digest, repository):
                    return True
            except RegistryError:
                pass  # no pull access there, or the registry errs: upload instead
            self.cache.forget(self.url, repository, digest)
        return False

    def record(self, result: PushResult) -> None:
        """Remember that the target repository now holds every layer of ``result``."""
        if self.cache is not None and self.url is not None:
            self.cache.record(self.url, self.store.ref.repository, [layer.digest for layer in result.layers])

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def record_locations(cache: BlobLocationCache, store: Store, digests: set[str]) -> None:
    url = registry_url(store)
    if url is not None:
        cache.record(url, store.ref.repository, digests)
