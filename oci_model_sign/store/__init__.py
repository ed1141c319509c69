"""Stores: registries and on-disk layouts behind one interface (see ``base.Store``)."""

from __future__ import annotations

from .base import BlobSource, Store, StoreOptions

__all__ = ["BlobSource", "Store", "StoreOptions", "open_store"]


def open_store(ref: object, options: StoreOptions | None = None, *, create: bool = False) -> Store:
    """The store a reference points at; ``create`` makes a missing layout (for push/pack)."""
    from ..reference import Reference, parse_reference

    if isinstance(ref, str):
        ref = parse_reference(ref)
    assert isinstance(ref, Reference)
    options = options or StoreOptions()
    if ref.archive:
        from .archive import ArchiveStore

        return ArchiveStore(ref, options, create=create)
    if ref.is_layout:
        from .layout import LayoutStore

        return LayoutStore(ref, options, create=create)
    from .registry import RegistryStore

    return RegistryStore(ref, options)
