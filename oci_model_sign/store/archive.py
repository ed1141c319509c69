"""An OCI image layout packed in a tar file as a ``Store`` (``oci-archive:FILE.tar[:TAG]``).

skopeo's name and format, for air-gapped transfer: the tar holds ``oci-layout``,
``index.json`` and ``blobs/<alg>/<hex>``, tags being ``org.opencontainers.image.ref.name``
annotations, exactly as in an ``oci:`` layout.

Reading treats the tar as untrusted and never unpacks it: the headers are scanned once with a
small parser of our own (checksums checked, PAX/GNU long-name records bounded, links, devices,
absolute or ``..`` names and duplicate members refused, member data inside the file), and
every read is a bounded, verified read at the member's offset. Writing goes to a layout in a
temporary folder beside the archive (seeded with the archive's content when it exists); closing
the store packs it into a new tar and renames it over the old one, so a reader never sees a
half-written archive, and ``discard`` drops the changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..digest import CHUNK, copy_verified, is_digest, verify_bytes
from ..errors import InputError, IntegrityError, LimitError, NotFoundError
from ..limits import Limits, load_json
from ..oci.descriptor import Descriptor, ManifestData
from ..oci.mediatypes import ANNOTATION_REF_NAME, OCI_INDEX
from ..reference import Reference
from .base import BlobSource, Progress, StoreOptions
from .layout import INDEX_FILE, LAYOUT_FILE, LayoutStore, sniff_manifest_type

BLOCK = 512
MAX_EXTENDED_HEADER = 64 * 1024  # a PAX or GNU long-name record: names, not data
_REGULAR = (b"0", b"\0", b"7")
_KINDS = {b"1": "hard link", b"2": "symbolic link", b"3": "character device", b"4": "block device", b"6": "FIFO"}


@dataclass(frozen=True)
class Member:
    offset: int
    size: int


def _number(field: bytes, what: str) -> int:
    """A tar numeric field: octal text, or GNU base-256 for large values."""
    if field and field[0] & 0x80:
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text or b"0", 8)
    except ValueError as exc:
        raise IntegrityError(f"archive header has a malformed {what} field") from exc


def _clean_name(raw: str) -> str | None:
    """The member's path inside the layout; None for folders; refuses escaping names."""
    name = raw
    while name.startswith("./"):
        name = name[2:]
    if name in ("", "."):
        return None
    if name.startswith("/") or any(part == ".." for part in name.split("/")):
        raise IntegrityError(f"archive member {raw!r} has an unsafe path")
    return name.rstrip("/") if name.endswith("/") else name


def _pax_path(data: bytes) -> str | None:
    """The ``path`` record of a PAX extended header, if any."""
    found: str | None = None
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise IntegrityError("archive has a malformed PAX header")
        try:
            length = int(data[pos:space])
        except ValueError as exc:
            raise IntegrityError("archive has a malformed PAX header") from exc
        if length <= 0 or pos + length > len(data):
            raise IntegrityError("archive has a malformed PAX header")
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        if key == b"path":
            found = value.decode("utf-8", "replace")
        pos += length
    return found


def scan_members(f: BinaryIO, file_size: int, limits: Limits) -> dict[str, Member]:
    """Every regular file of a tar: name -> where its bytes are. Bounded; refuses tricks."""
    members: dict[str, Member] = {}
    max_members = limits.layers * 2 + limits.referrers * 4 + 16
    pos = 0
    long_name: str | None = None
    while True:
        f.seek(pos)
        header = f.read(BLOCK)
        if len(header) < BLOCK:
            if not header:
                break  # no end-of-archive blocks: accepted, as GNU tar does
            raise IntegrityError("archive ends inside a tar header (truncated)")
        if header == b"\0" * BLOCK:
            break
        stored = _number(header[148:156], "checksum")
        if stored != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise IntegrityError(f"archive header at byte {pos} has a bad checksum (not a tar, or corrupted)")
        size = _number(header[124:136], "size")
        kind = header[156:157]
        data_at = pos + BLOCK
        if size < 0 or data_at + size > file_size:
            raise IntegrityError(f"archive member at byte {pos} runs past the end of the file (truncated)")
        pos = data_at + (size + BLOCK - 1) // BLOCK * BLOCK
        if kind in (b"x", b"g", b"L"):
            if size > MAX_EXTENDED_HEADER:
                raise LimitError(f"archive has a {size}-byte extended header, over the limit of {MAX_EXTENDED_HEADER}")
            f.seek(data_at)
            data = f.read(size)
            if kind == b"x":
                long_name = _pax_path(data) or long_name
            elif kind == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
            continue
        name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
            if prefix:
                name = f"{prefix}/{name}"
        if long_name is not None:
            name, long_name = long_name, None
        clean = _clean_name(name)
        if kind == b"5" or clean is None:
            continue
        if kind not in _REGULAR:
            what = _KINDS.get(kind, f"member of type {kind!r}")
            raise IntegrityError(f"archive member {name!r} is a {what}; an OCI archive holds only files")
        if clean in members:
            raise IntegrityError(f"archive holds {clean!r} twice")
        if len(members) >= max_members:
            raise LimitError(f"archive holds more than {max_members} files")
        members[clean] = Member(data_at, size)
    return members


class _Section(io.RawIOBase):
    """``size`` bytes of a file from ``offset`` on, as a stream of its own."""

    def __init__(self, path: Path, member: Member) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._f.seek(member.offset)
        self._left = member.size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(b)[: min(len(b), self._left)]
        n = self._f.readinto(view)
        self._left -= n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def _blob_name(digest: str) -> str:
    if not is_digest(digest):
        raise IntegrityError(f"invalid digest {digest!r}")
    alg, hexpart = digest.split(":", 1)
    return f"blobs/{alg}/{hexpart}"


class ArchiveStore:
    """A ``Store`` over ``oci-archive:FILE.tar`` (see the module docstring)."""

    def __init__(self, ref: Reference, options: StoreOptions, *, create: bool) -> None:
        assert ref.layout is not None
        self.ref = ref
        self.options = options
        self.limits: Limits = options.limits
        self.path = Path(ref.layout)
        self._members: dict[str, Member] | None = None
        self._staging: LayoutStore | None = None
        self._staging_dir: Path | None = None
        self._lock_fd: int | None = None
        self._lock = threading.Lock()
        if self.path.exists():
            if not self.path.is_file():
                raise InputError(f"{self.path} is not a file", hint="oci-archive: names a tar file; use oci: for a folder")
            try:
                with open(self.path, "rb") as f:
                    self._members = scan_members(f, os.fstat(f.fileno()).st_size, self.limits)
            except OSError as exc:
                raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
            if LAYOUT_FILE not in self._members:
                raise IntegrityError(f"{self.path} holds no oci-layout file: not an OCI archive")
            self._check_layout_file()
        elif not create:
            raise NotFoundError(f"no OCI archive at {self.path}", hint="check the path")

    # -- reading the tar -------------------------------------------------------------------
    def _read_member(self, name: str, max_bytes: int, what: str) -> bytes:
        member = (self._members or {}).get(name)
        if member is None:
            raise NotFoundError(f"{what} is not in {self.path}")
        if member.size > max_bytes:
            raise LimitError(f"{what} in {self.path} is {member.size} bytes, over the limit of {max_bytes}")
        with _Section(self.path, member) as f:
            return f.read(member.size) or b""

    def _check_layout_file(self) -> None:
        data = self._read_member(LAYOUT_FILE, 4096, "oci-layout file")
        value = load_json(data, max_bytes=4096, depth=4, what=f"{self.path} oci-layout")
        version = value.get("imageLayoutVersion") if isinstance(value, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise IntegrityError(f"{self.path} is not an OCI layout version 1.x archive")

    def _entries(self) -> list[Descriptor]:
        if self._members is None:
            return []
        data = self._read_member(INDEX_FILE, self.limits.index_bytes, "index.json")
        value = load_json(data, max_bytes=self.limits.index_bytes, depth=self.limits.json_depth,
                          what=f"{self.path} index.json")
        manifests = value.get("manifests", []) if isinstance(value, dict) else None
        if not isinstance(manifests, list):
            raise IntegrityError(f"{self.path} index.json is not an OCI image index")
        return [Descriptor.from_json(m, f"{self.path} index.json entry {i}") for i, m in enumerate(manifests)]

    # -- writing: a layout beside the archive, packed on close --------------------------------
    def _writable(self) -> LayoutStore:
        with self._lock:  # push and copy write from several threads: one staging layout for all
            if self._staging is None:
                self._staging = self._start_staging()
            return self._staging

    def _start_staging(self) -> LayoutStore:
        prefix = f".{self.path.name}.omsign-"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sweep(prefix)
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=self.path.parent))
            # Held while we write: tells a later sweep this folder is in use, not abandoned.
            self._lock_fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise InputError(f"cannot write beside {self.path}: {exc.strerror or exc}") from exc
        self._staging_dir = folder
        layout = folder / "layout"
        staging = LayoutStore(Reference(repository=str(layout), layout=str(layout)), self.options, create=True)
        if self._members is not None:
            for name, member in self._members.items():
                parts = name.split("/")
                if len(parts) == 3 and parts[0] == "blobs" and is_digest(f"{parts[1]}:{parts[2]}"):
                    (layout / "blobs" / parts[1]).mkdir(parents=True, exist_ok=True)
                    with _Section(self.path, member) as src, open(layout / name, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
            if INDEX_FILE in self._members:
                data = self._read_member(INDEX_FILE, self.limits.index_bytes, "index.json")
                load_json(data, max_bytes=self.limits.index_bytes, depth=self.limits.json_depth, what="index.json")
                (layout / INDEX_FILE).write_bytes(data)
        return staging

    def _sweep(self, prefix: str) -> None:
        """Remove staging folders a killed writer left beside the archive (no one holds their lock)."""
        for stale in self.path.parent.glob(f"{prefix}*"):
            try:
                fd = os.open(stale, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # another process is writing there
            else:
                shutil.rmtree(stale, ignore_errors=True)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Pack what was written into the archive (atomically); nothing to do after reads only."""
        if self._staging is None or self._staging_dir is None:
            return
        root = self._staging.root
        fd, tmp = tempfile.mkstemp(prefix="archive-", suffix=".tar", dir=self._staging_dir)
        try:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                    for name in (LAYOUT_FILE, INDEX_FILE):
                        self._add(tar, root, name)
                    for folder in ("blobs", *sorted(f"blobs/{p.name}" for p in (root / "blobs").iterdir() if p.is_dir())):
                        info = tarfile.TarInfo(folder)
                        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                        tar.addfile(info)
                        if folder != "blobs":
                            for blob in sorted((root / folder).iterdir()):
                                if not blob.name.startswith("."):
                                    self._add(tar, root, f"{folder}/{blob.name}")
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            self.discard()

    @staticmethod
    def _add(tar: tarfile.TarFile, root: Path, name: str) -> None:
        path = root / name
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
        with open(path, "rb") as f:
            tar.addfile(info, f)

    def discard(self) -> None:
        """Forget what was written since opening; the archive stays as it was."""
        if self._staging_dir is not None:
            shutil.rmtree(self._staging_dir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._staging = None
        self._staging_dir = None

    # -- blobs -----------------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        if self._staging is not None:
            return self._staging.blob_exists(digest)
        return _blob_name(digest) in (self._members or {})

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        return self.blob_exists(digest)

    def push_blob(
        self, source: BlobSource, progress: Progress | None = None, *, known_absent: bool = False
    ) -> Descriptor:
        return self._writable().push_blob(source, progress, known_absent=known_absent)

    def fetch_blob(self, desc: Descriptor, out: BinaryIO, progress: Progress | None = None) -> None:
        if self._staging is not None:
            self._staging.fetch_blob(desc, out, progress)
            return
        member = (self._members or {}).get(_blob_name(desc.digest))
        if member is None:
            raise NotFoundError(f"blob {desc.digest} is not in {self.path}")
        with _Section(self.path, member) as f:
            copy_verified(f, out, desc.digest, desc.size, progress)

    def read_blob(self, desc: Descriptor, max_bytes: int) -> bytes:
        if self._staging is not None:
            return self._staging.read_blob(desc, max_bytes)
        if desc.size > max_bytes:
            raise LimitError(f"blob {desc.digest} is {desc.size} bytes, over the limit of {max_bytes}")
        data = self._read_member(_blob_name(desc.digest), desc.size, f"blob {desc.digest}")
        return verify_bytes(data, desc.digest, desc.size)

    # -- manifests -------------------------------------------------------------------------
    def resolve(self, identifier: str) -> Descriptor:
        if self._staging is not None:
            return self._staging.resolve(identifier)
        entries = self._entries()
        if is_digest(identifier):
            for desc in entries:
                if desc.digest == identifier:
                    return Descriptor(desc.media_type, desc.digest, desc.size, artifact_type=desc.artifact_type)
            limit = max(self.limits.manifest_bytes, self.limits.index_bytes)
            data = self._read_member(_blob_name(identifier), limit, f"manifest {identifier}")
            verify_bytes(data, identifier, what="manifest")
            return Descriptor(sniff_manifest_type(data, self.limits), identifier, len(data))
        found = [d for d in entries if (d.annotations or {}).get(ANNOTATION_REF_NAME) == identifier]
        if not found:
            raise NotFoundError(f"tag {identifier!r} is not in {self.path}", hint="list the tags with omsign ls")
        desc = found[-1]
        return Descriptor(desc.media_type, desc.digest, desc.size, artifact_type=desc.artifact_type)

    def get_manifest(self, identifier: str) -> ManifestData:
        if self._staging is not None:
            return self._staging.get_manifest(identifier)
        desc = self.resolve(identifier)
        limit = self.limits.index_bytes if desc.media_type == OCI_INDEX else self.limits.manifest_bytes
        data = self._read_member(_blob_name(desc.digest), limit, f"manifest {desc.digest}")
        verify_bytes(data, desc.digest, desc.size, what="manifest")
        return ManifestData(data, desc.media_type, desc.digest)

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> str:
        return self._writable().put_manifest(data, media_type, tag)

    def delete_manifest(self, digest: str) -> None:
        self._writable().delete_manifest(digest)

    def list_tags(self) -> list[str]:
        if self._staging is not None:
            return self._staging.list_tags()
        return sorted({t for d in self._entries() if (t := (d.annotations or {}).get(ANNOTATION_REF_NAME))})

    def referrers_api(self, digest: str) -> list[Descriptor] | None:
        return None
