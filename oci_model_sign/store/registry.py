"""An OCI distribution-spec v1.1 registry as a ``Store``.

The layers underneath, as go-containerregistry splits its ``transport``: ``transport`` (the
client, retries, typed errors), ``auth`` (Basic and Bearer as an ``httpx.Auth`` flow),
``session`` (one client and token cache per host, shared by every repository opened there),
``upload`` and ``download`` (the blob data path: every file read once, memory flat whatever the
blob size, dropped connections resumed). This module adds manifests, tags and the referrers
API, where bodies are read under explicit byte limits and checked against their digests.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import BinaryIO

from ..digest import is_digest, verify_bytes
from ..errors import IntegrityError, LimitError, RegistryError
from ..limits import load_json
from ..oci.descriptor import Descriptor, ManifestData
from ..oci.mediatypes import MANIFEST_TYPES, OCI_INDEX
from ..reference import Reference
from . import download, upload
from .base import BlobSource, Progress, StoreOptions
from .session import RegistrySession, RepositoryClient, TransferStats
from .transport import describe_transport_error, retry_after_seconds
from .upload import parse_upload_range

__all__ = [
    "RegistryStore",
    "TransferStats",
    "describe_transport_error",
    "parse_next_link",
    "parse_upload_range",
    "retry_after_seconds",
]

ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES)
MAX_PAGES = 10_000  # tags/referrers pagination: a registry looping on Link cannot keep us forever
MANIFEST_BLOB_RETRIES = 3  # manifest PUTs refused because a just-written blob is not visible yet
# Codes distribution answers a manifest PUT with while a blob it names is still settling.
BLOB_SETTLING_CODES = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "DIGEST_INVALID"})


def parse_next_link(header: str | None) -> str | None:
    """The target of ``Link: <url>; rel="next"`` (RFC 8288), or None."""
    if not header:
        return None
    for part in header.split(","):
        segs = part.split(";")
        target = segs[0].strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        for param in segs[1:]:
            key, _, val = param.strip().partition("=")
            if key.strip().lower() == "rel" and "next" in val.strip().strip('"').split():
                return target[1:-1]
    return None


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip()


class RegistryStore(RepositoryClient):
    """A repository on a distribution-spec registry (see module docstring for the layers).

    Opened on its own it owns a private ``RegistrySession``; ``RegistrySession.repository``
    gives views that share the session's client and tokens.
    """

    def __init__(self, ref: Reference, options: StoreOptions, *, session: RegistrySession | None = None) -> None:
        super().__init__(ref, options, session)
        self._referrers_lock = threading.Lock()
        self._referrers_supported: bool | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryStore({self.base_url}/{self.ref.repository})"

    def check_auth(self) -> None:
        """Prove the credentials work (``omsign login``): GET /v2/ through the normal auth dance."""
        resp = self.send("GET", f"{self.base_url}/v2/", scopes=self.pull_scopes)
        if resp.status_code != 200:
            raise self.error(resp, "the registry API")
        resp.close()

    # -- blobs ----------------------------------------------------------------------------
    def push_blob(
        self, source: BlobSource, progress: Progress | None = None, *, known_absent: bool = False
    ) -> Descriptor:
        return upload.push_blob(self, source, progress, known_absent=known_absent)

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        return upload.mount_blob(self, digest, from_repository)

    def fetch_blob(self, desc: Descriptor, out: BinaryIO, progress: Progress | None = None) -> None:
        download.fetch_blob(self, desc, out, progress)

    def read_blob(self, desc: Descriptor, max_bytes: int) -> bytes:
        return download.read_blob(self, desc, max_bytes)

    # -- manifests ------------------------------------------------------------------------
    def _manifest_url(self, identifier: str) -> str:
        return f"{self.repo_url}/manifests/{identifier}"

    def resolve(self, identifier: str) -> Descriptor:
        resp = self.send(
            "HEAD", self._manifest_url(identifier), scopes=self.pull_scopes, headers={"Accept": ACCEPT_MANIFESTS}
        )
        if resp.status_code == 400:
            # A HEAD answer has no body, so no error codes (nor Go's "HTTP request to an HTTPS
            # server"): the GET below says what the refusal was.
            resp.close()
            return self.get_manifest(identifier).descriptor
        if resp.status_code != 200:
            raise self.error(resp, f"manifest {identifier}")
        digest = resp.headers.get("docker-content-digest", "")
        media_type = _media_type(resp.headers.get("content-type"))
        length = resp.headers.get("content-length", "")
        if is_digest(digest) and media_type in MANIFEST_TYPES and length.isdigit():
            if is_digest(identifier) and digest != identifier:
                raise IntegrityError(f"{self.host} resolved {identifier} to a different digest {digest}")
            return Descriptor(media_type, digest, int(length))
        return self.get_manifest(identifier).descriptor

    def get_manifest(self, identifier: str) -> ManifestData:
        resp = self.send(
            "GET",
            self._manifest_url(identifier),
            scopes=self.pull_scopes,
            headers={"Accept": ACCEPT_MANIFESTS},
            stream=True,
        )
        if resp.status_code != 200:
            raise self.error(resp, f"manifest {identifier}")
        header_digest = resp.headers.get("docker-content-digest", "")
        media_type = _media_type(resp.headers.get("content-type"))
        data = self.read_limited(resp, self.limits.manifest_bytes, f"manifest {identifier}")
        if is_digest(identifier):
            verify_bytes(data, identifier, what=f"manifest {identifier}")
            digest = identifier
        else:
            algorithm = header_digest.split(":", 1)[0] if is_digest(header_digest) else "sha256"
            h = hashlib.new(algorithm)
            h.update(data)
            digest = f"{algorithm}:{h.hexdigest()}"
            if is_digest(header_digest) and header_digest != digest:
                raise IntegrityError(
                    f"manifest {identifier}: {self.host} says {header_digest} but the bytes hash to {digest}"
                )
            if algorithm != "sha256":
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if media_type not in MANIFEST_TYPES:
            media_type = self._media_type_from_body(data) or media_type
        return ManifestData(data, media_type, digest)

    def _media_type_from_body(self, data: bytes) -> str | None:
        try:
            value = load_json(
                data, max_bytes=self.limits.manifest_bytes, depth=self.limits.json_depth, what="manifest"
            )
        except (IntegrityError, LimitError):
            return None
        media_type = value.get("mediaType") if isinstance(value, dict) else None
        return media_type if isinstance(media_type, str) else None

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = tag or digest
        attempt = 0
        while True:
            resp = self.send(
                "PUT",
                self._manifest_url(target),
                scopes=self.push_scopes,
                headers={"Content-Type": media_type},
                content=data,
            )
            if resp.status_code in (200, 201, 202, 204):
                break
            error = self.error(resp, f"manifest {target}")
            # A blob this manifest names was committed a moment ago, possibly by a concurrent
            # pusher of the same model (distribution 2.8 rewrites the blob link in place and
            # answers DIGEST_INVALID or MANIFEST_BLOB_UNKNOWN meanwhile; eventually consistent
            # storage does the same): the blob is there, so ask again shortly.
            transient = error.status == 400 and not BLOB_SETTLING_CODES.isdisjoint(error.codes)
            if not transient or attempt >= MANIFEST_BLOB_RETRIES:
                raise error
            time.sleep(self.backoff(attempt))
            attempt += 1
        returned = resp.headers.get("docker-content-digest", "")
        resp.close()
        if returned.startswith("sha256:") and returned != digest:
            raise IntegrityError(f"{self.host} stored manifest {target} as {returned}, expected {digest}")
        self.stats.add(uploaded_bytes=len(data))
        return digest

    def delete_manifest(self, digest: str) -> None:
        resp = self.send("DELETE", self._manifest_url(digest), scopes=self.push_scopes)
        if resp.status_code in (200, 202, 204):
            resp.close()
            return
        if resp.status_code == 405:
            resp.close()
            raise RegistryError(
                f"{self.host} does not allow deleting manifests",
                hint="enable deletes on the registry, or leave the manifest in place",
            )
        raise self.error(resp, f"manifest {digest}")

    def list_tags(self, *, page_size: int = 1000) -> list[str]:
        """All tags, following ``Link`` pagination (``page_size`` is the ``n`` asked per page)."""
        url: str | None = f"{self.repo_url}/tags/list?n={page_size}"
        tags: set[str] = set()
        pages = 0
        while url:
            pages += 1
            if pages > MAX_PAGES:
                raise LimitError(f"{self.ref.repo_name} has more than {MAX_PAGES} pages of tags")
            resp = self.send("GET", url, scopes=self.pull_scopes, stream=True)
            if resp.status_code != 200:
                raise self.error(resp, "repository")
            link = resp.headers.get("link")
            page_url = resp.request.url
            data = self.read_limited(resp, self.limits.index_bytes, "tag list")
            value = load_json(data, max_bytes=self.limits.index_bytes, depth=8, what="tag list")
            names = value.get("tags") if isinstance(value, dict) else None
            if names is not None:
                if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
                    raise IntegrityError(f"{self.host} sent a tag list that is not a list of strings")
                tags.update(names)
            nxt = parse_next_link(link)
            url = str(page_url.join(nxt)) if nxt else None
        return sorted(tags)

    # -- referrers ------------------------------------------------------------------------
    def referrers_api(self, digest: str) -> list[Descriptor] | None:
        if self._referrers_supported is False:
            return None
        url: str | None = f"{self.repo_url}/referrers/{digest}"
        found: list[Descriptor] = []
        visited: set[str] = set()
        pages = 0
        while url:
            pages += 1
            if pages > MAX_PAGES:
                raise LimitError(f"referrers of {digest} span more than {MAX_PAGES} pages")
            resp = self.send("GET", url, scopes=self.pull_scopes, headers={"Accept": OCI_INDEX}, stream=True)
            content_type = resp.headers.get("content-type", "")
            if resp.status_code != 200 or content_type != OCI_INDEX:
                resp.close()
                if pages == 1 and (resp.status_code in (400, 404, 405) or resp.status_code == 200):
                    with self._referrers_lock:
                        self._referrers_supported = False
                return None
            link = resp.headers.get("link")
            page_url = resp.request.url
            data = self.read_limited(resp, self.limits.index_bytes, f"referrers of {digest}")
            value = load_json(
                data, max_bytes=self.limits.index_bytes, depth=self.limits.json_depth, what="referrers index"
            )
            manifests = value.get("manifests") if isinstance(value, dict) else None
            if not isinstance(manifests, list):
                raise IntegrityError(f"{self.host} sent a referrers index without a manifests list")
            if len(found) + len(manifests) > self.limits.referrers:
                raise LimitError(
                    f"{digest} has more than {self.limits.referrers} referrers",
                    hint="raise OMSIGN_MAX_REFERRERS if this is expected",
                )
            found.extend(Descriptor.from_json(m, "referrer descriptor") for m in manifests)
            nxt = parse_next_link(link)
            url = str(page_url.join(nxt)) if nxt else None
            # Every page but the last must bring referrers: otherwise a registry could keep us
            # fetching empty pages (or one page linking to itself) MAX_PAGES times.
            visited.add(str(page_url))
            if url is not None and (not manifests or url in visited):
                raise RegistryError(
                    f"{self.host} paginates the referrers of {digest} without progress (an empty page or a Link loop)"
                )
        with self._referrers_lock:
            self._referrers_supported = True
        return found

