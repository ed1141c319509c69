"""An OCI image layout on disk as a ``Store`` (``oci:PATH[:TAG]``).

Layout: ``oci-layout`` (``{"imageLayoutVersion":"1.0.0"}``), ``index.json`` and
``blobs/<alg>/<hex>``; tags are ``org.opencontainers.image.ref.name`` annotations on
``index.json`` entries (what skopeo and oras write and read). Every write is a temporary file
+ fsync + ``os.replace``; ``index.json`` read-modify-writes hold an exclusive ``flock`` on the
layout folder, so concurrent processes never lose each other's tags. Reads are bounded by
``limits`` and verified against their digests: a blob edited inside the layout is detected.
There is no referrers API: ``referrers_api`` returns None and the generic fallback-tag logic
keeps a ``sha256-<hex>`` tagged index here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..digest import CHUNK, copy_verified, is_digest, new_hasher, verify_bytes
from ..durable import fsync_dir
from ..errors import InputError, IntegrityError, LimitError, NotFoundError, UsageError
from ..limits import Limits, load_json
from ..oci.descriptor import Descriptor, ManifestData
from ..oci.manifest import build_index, compact_json
from ..oci.mediatypes import (
    ANNOTATION_REF_NAME,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    OCTET_STREAM,
)
from ..reference import Reference
from .base import BlobSource, Progress, StoreOptions

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = "1.0.0"
INDEX_FILE = "index.json"
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def sniff_manifest_type(data: bytes, limits: Limits) -> str:
    """The media type of a manifest found by digest alone (no descriptor says it): its own
    ``mediaType``, else an index if it lists ``manifests``, else an image manifest."""
    value = load_json(data, max_bytes=max(limits.manifest_bytes, limits.index_bytes),
                      depth=limits.json_depth, what="manifest")
    media_type = value.get("mediaType") if isinstance(value, dict) else None
    if isinstance(media_type, str) and media_type in MANIFEST_TYPES:
        return media_type
    if isinstance(value, dict) and "manifests" in value:
        return OCI_INDEX
    return OCI_MANIFEST


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (after following symlinks).

    A layout is untrusted input: a FIFO where a blob should be would block ``open`` forever,
    a device could be read without end, a directory or a symlink loop would raise mid-way.
    ``O_NONBLOCK`` makes opening a FIFO return at once; ``fstat`` on the open descriptor (no
    race with a rename) then decides. Raises ``FileNotFoundError`` for a missing file and
    ``IntegrityError`` for anything that is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError as exc:
        raise IntegrityError(f"{path} is a directory, not a file") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"{path} is a symbolic link loop, not a file") from exc
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
            )
            raise IntegrityError(f"{path} is {kind}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class LayoutStore:
    """A ``Store`` over an OCI image layout folder."""

    def __init__(self, ref: Reference, options: StoreOptions, *, create: bool) -> None:
        if ref.layout is None:
            raise UsageError(f"{ref} is not a layout reference", hint="write oci:PATH[:TAG]")
        self.ref = ref
        self.options = options
        self.limits: Limits = options.limits
        self.root = Path(ref.layout)
        layout_file = self.root / LAYOUT_FILE
        if not layout_file.is_file() and not os.path.lexists(layout_file):
            if not create:
                raise NotFoundError(
                    f"no OCI image layout at {self.root}",
                    hint="check the path; pack or push to oci:PATH to create one",
                )
            self._create()
        self._check_layout_file()

    # -- set-up ----------------------------------------------------------------------------
    def _create(self) -> None:
        try:
            if self.root.exists() and not self.root.is_dir():
                raise InputError(f"{self.root} exists and is not a folder")
            self.root.mkdir(parents=True, exist_ok=True)
            # Under the lock, so two processes creating the same layout agree on who did it.
            with self._locked():
                if (self.root / LAYOUT_FILE).is_file():
                    return
                if any(self.root.iterdir()):
                    raise InputError(
                        f"{self.root} is a non-empty folder without an oci-layout file",
                        hint="choose an empty or new folder for the layout",
                    )
                (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
                _atomic_write(self.root / INDEX_FILE, build_index([]))
                # Written last: its presence means the layout is complete.
                _atomic_write(self.root / LAYOUT_FILE, compact_json({"imageLayoutVersion": LAYOUT_VERSION}))
        except OSError as exc:
            raise InputError(f"cannot create an OCI layout at {self.root}: {exc.strerror or exc}") from exc

    def _check_layout_file(self) -> None:
        data = self._read_small(self.root / LAYOUT_FILE, 4096, "oci-layout file")
        value = load_json(data, max_bytes=4096, depth=4, what=f"{self.root}/oci-layout")
        if not isinstance(value, dict) or not isinstance(value.get("imageLayoutVersion"), str):
            raise IntegrityError(f"{self.root}/oci-layout has no imageLayoutVersion")
        if not value["imageLayoutVersion"].startswith("1."):
            raise IntegrityError(
                f"{self.root} is OCI layout version {value['imageLayoutVersion']}, omsign reads 1.x"
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive flock on the layout folder itself (no lock file left behind)."""
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _read_small(path: Path, max_bytes: int, what: str) -> bytes:
        try:
            with open_regular(path) as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{what} {path} does not exist") from exc
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len(data) > max_bytes:
            raise LimitError(f"{what} {path} is over the limit of {max_bytes} bytes")
        return data

    # -- index.json ------------------------------------------------------------------------
    def _read_index(self) -> dict[str, Any]:
        data = self._read_small(self.root / INDEX_FILE, self.limits.index_bytes, "layout index")
        value = load_json(data, max_bytes=self.limits.index_bytes, depth=self.limits.json_depth,
                          what=f"{self.root}/index.json")
        if not isinstance(value, dict) or not isinstance(value.get("manifests", []), list):
            raise IntegrityError(f"{self.root}/index.json is not an OCI image index")
        value.setdefault("manifests", [])
        return value

    def _entries(self) -> list[tuple[Descriptor, dict[str, Any]]]:
        index = self._read_index()
        out = []
        for i, item in enumerate(index["manifests"]):
            out.append((Descriptor.from_json(item, f"{self.root}/index.json entry {i}"), item))
        return out

    def _write_index(self, index: dict[str, Any]) -> None:
        ordered = {"schemaVersion": index.get("schemaVersion", 2),
                   "mediaType": index.get("mediaType", OCI_INDEX),
                   "manifests": index["manifests"]}
        for k, v in index.items():
            ordered.setdefault(k, v)
        _atomic_write(self.root / INDEX_FILE, compact_json(ordered))

    # -- blobs -----------------------------------------------------------------------------
    def _blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise IntegrityError(f"invalid digest {digest!r}")
        alg, hexpart = digest.split(":", 1)
        return self.root / "blobs" / alg / hexpart

    def blob_exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """A layout has no other repositories: "mounted" only if the blob is already here."""
        return self.blob_exists(digest)

    def push_blob(
        self, source: BlobSource, progress: Progress | None = None, *, known_absent: bool = False
    ) -> Descriptor:
        if source.digest is not None and not known_absent and self.blob_exists(source.digest):
            if progress is not None:
                progress(source.size)
            return Descriptor(OCTET_STREAM, source.digest, source.size)
        alg = source.digest.split(":", 1)[0] if source.digest else "sha256"
        hasher = new_hasher(f"{alg}:") if source.digest else hashlib.sha256()
        folder = self.root / "blobs" / alg
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        except OSError as exc:  # blobs/<alg> is a file, FIFO or unwritable: the layout is unusable
            raise InputError(f"cannot write blobs into {folder}: {exc.strerror or exc}") from exc
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                try:
                    src = source.open()
                except OSError as exc:
                    raise InputError(f"cannot read {source.path}: {exc.strerror or exc}") from exc
                with src:
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        size += len(chunk)
                        if size > source.size:
                            break
                        hasher.update(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            what = str(source.path) if source.path is not None else "blob"
            if size != source.size:
                raise InputError(f"{what} changed size while being read ({source.size} bytes planned)",
                                 hint="push again once the model folder is not being written")
            digest = f"{alg}:{hasher.hexdigest()}"
            if source.digest is not None and digest != source.digest:
                raise InputError(f"{what} changed while being read: expected {source.digest}, got {digest}",
                                 hint="push again; if the file did not change, retry with --no-cache")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self._blob_path(digest))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(folder)
        return Descriptor(OCTET_STREAM, digest, size)

    def _open_blob(self, digest: str) -> BinaryIO:
        try:
            return open_regular(self._blob_path(digest))
        except FileNotFoundError as exc:
            raise NotFoundError(f"blob {digest} is not in {self.root}") from exc
        except OSError as exc:
            raise InputError(f"cannot read blob {digest} in {self.root}: {exc.strerror or exc}") from exc

    def fetch_blob(self, desc: Descriptor, out: BinaryIO, progress: Progress | None = None) -> None:
        with self._open_blob(desc.digest) as f:
            copy_verified(f, out, desc.digest, desc.size, progress)

    def read_blob(self, desc: Descriptor, max_bytes: int) -> bytes:
        if desc.size > max_bytes:
            raise LimitError(f"blob {desc.digest} is {desc.size} bytes, over the limit of {max_bytes}")
        with self._open_blob(desc.digest) as f:
            data = f.read(desc.size + 1)
        return verify_bytes(data, desc.digest, desc.size)

    # -- manifests -------------------------------------------------------------------------
    def _max_manifest(self, media_type: str | None) -> int:
        return self.limits.index_bytes if media_type == OCI_INDEX else self.limits.manifest_bytes

    def resolve(self, identifier: str) -> Descriptor:
        entries = self._entries()
        if is_digest(identifier):
            for desc, _ in entries:
                if desc.digest == identifier:
                    return Descriptor(desc.media_type, desc.digest, desc.size, artifact_type=desc.artifact_type)
            # Not listed (a child of an index, say): the blob itself tells its type.
            path = self._blob_path(identifier)
            if not path.is_file():
                raise NotFoundError(f"manifest {identifier} is not in {self.root}")
            limit = max(self.limits.manifest_bytes, self.limits.index_bytes)
            data = verify_bytes(self._read_small(path, limit, "manifest"), identifier, what="manifest")
            return Descriptor(sniff_manifest_type(data, self.limits), identifier, len(data))
        found = [desc for desc, _ in entries if (desc.annotations or {}).get(ANNOTATION_REF_NAME) == identifier]
        if not found:
            raise NotFoundError(f"tag {identifier!r} is not in {self.root}",
                                hint="check the tag; a layout's tags are in its index.json")
        desc = found[-1]
        return Descriptor(desc.media_type, desc.digest, desc.size, artifact_type=desc.artifact_type)

    def get_manifest(self, identifier: str) -> ManifestData:
        desc = self.resolve(identifier)
        limit = self._max_manifest(desc.media_type)
        if desc.size > limit:
            raise LimitError(f"manifest {desc.digest} is {desc.size} bytes, over the limit of {limit}")
        with self._open_blob(desc.digest) as f:
            data = f.read(limit + 1)
        verify_bytes(data, desc.digest, desc.size, what="manifest")
        return ManifestData(data, desc.media_type, desc.digest)

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> str:
        limit = self._max_manifest(media_type)
        if len(data) > limit:
            raise LimitError(f"manifest is {len(data)} bytes, over the limit of {limit}")
        if tag is not None and not _TAG_RE.match(tag):
            raise UsageError(f"invalid tag {tag!r}")
        value = load_json(data, max_bytes=limit, depth=self.limits.json_depth, what="manifest")
        artifact_type: str | None = None
        if isinstance(value, dict):
            at = value.get("artifactType")
            if isinstance(at, str):
                artifact_type = at  # recorded on the index entry, as oras does, for discovery
        desc = self.push_blob(BlobSource(size=len(data), data=data))
        digest = desc.digest
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if artifact_type:
            entry["artifactType"] = artifact_type
        with self._locked():
            index = self._read_index()
            manifests: list[Any] = index["manifests"]
            if tag is not None:
                entry["annotations"] = {ANNOTATION_REF_NAME: tag}
                manifests[:] = [
                    m for m in manifests
                    if not (isinstance(m, dict) and (
                        (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) == tag
                        or (m.get("digest") == digest and ANNOTATION_REF_NAME not in (m.get("annotations") or {}))
                    ))
                ]
                manifests.append(entry)
            elif not any(isinstance(m, dict) and m.get("digest") == digest for m in manifests):
                manifests.append(entry)
            else:
                return digest
            self._write_index(index)
        return digest

    def delete_manifest(self, digest: str) -> None:
        path = self._blob_path(digest)
        with self._locked():
            index = self._read_index()
            before = len(index["manifests"])
            index["manifests"] = [m for m in index["manifests"]
                                  if not (isinstance(m, dict) and m.get("digest") == digest)]
            if len(index["manifests"]) == before and not path.exists():
                raise NotFoundError(f"manifest {digest} is not in {self.root}")
            self._write_index(index)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def list_tags(self) -> list[str]:
        tags = {
            (desc.annotations or {}).get(ANNOTATION_REF_NAME)
            for desc, _ in self._entries()
        }
        return sorted(t for t in tags if t)

    def referrers_api(self, digest: str) -> list[Descriptor] | None:
        return None
