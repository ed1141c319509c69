"""A verified, content-addressed local model cache: ``snapshot(ref, policy) -> Path``.

Frameworks load models from folders many times; pulling each time wastes minutes, while a
plain cache would be trusted forever after one check. A snapshot folder is keyed by the
manifest digest (``$XDG_CACHE_HOME/omsign/models/<registry>/<repo>/_snapshots/<hex>/``, as
the Hugging Face cache keys ``snapshots/<commit>``), and every call still:

1. resolves the tag once (``_refs/<tag>`` records the answer but is never read back: a tag
   moved in the registry is followed at once);
2. verifies the signature against the policy: manifest and referrers only, no layer download;
3. re-checks every cached file against the digests the signed manifest names, through the
   digest cache (an unchanged file, same path/size/mtime/ctime/inode, is not re-hashed);
   files that differ, are missing, or were replaced by symlinks are fetched again, and files
   the manifest does not name are removed, so a folder that a framework scans for weights
   holds exactly the signed files.

Concurrent processes are serialised per digest by a lock file; a new snapshot is staged next
to its final place and renamed in whole, so a reader never sees a half-filled folder, and a
repaired file is replaced by rename (a process still reading the old one keeps its inode).

Names under ``<repo>/`` that start with ``_`` cannot be repository components (those start
with a letter or digit), so ``_snapshots``, ``_refs`` and ``_locks`` never collide with a
nested repository's folder.

Files from tar layers are checked against digests recorded when the verified layer was
extracted (``_snapshots/<hex>.members.json``): the signed manifest names only the layer's
digest, so that record, unlike raw-layer digests, is only as trustworthy as the cache folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .digest import hash_file
from .errors import InputError, UsageError
from .model.digestcache import DigestCache
from .reference import Reference, parse_reference
from .store import open_store
from .store.base import Store, StoreOptions

if TYPE_CHECKING:
    from .model.unpack import ModelManifest
    from .oci.descriptor import ManifestData
    from .progress import Reporter


class _Missing:
    """The ``policy`` argument was not given at all (as opposed to an explicit ``None``)."""

    def __repr__(self) -> str:
        return "<no policy given>"


MISSING: Any = _Missing()

SNAPSHOTS = "_snapshots"
REFS = "_refs"
LOCKS = "_locks"
_SAFE_HOST = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Snapshot:
    """A verified snapshot folder and what it was checked against."""

    path: Path
    digest: str  # manifest digest: the signed subject
    reference: str  # the reference pinned to that digest
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256 digest of its bytes
    fetched: list[str] = field(default_factory=list)  # relpaths downloaded by this call
    downloaded_bytes: int = 0
    verification: Any = None  # VerificationResult, or None when unsigned loading was allowed
    trust: Any = None  # the policy file's TrustOutcome, when the policy file decided


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omsign" / "models"


def model_dir(reference: Reference, cache_dir: Path) -> Path:
    """Where a repository's snapshots live: ``<cache>/<registry>/<repo>`` (``:`` -> ``_``)."""
    if reference.layout is not None:
        key = hashlib.sha256(os.path.abspath(reference.layout).encode()).hexdigest()[:32]
        return cache_dir / "_layouts" / key
    assert reference.registry is not None
    host = _SAFE_HOST.sub("_", reference.registry)
    return cache_dir.joinpath(host, *reference.repository.split("/"))


def check_policy(policy: Any, allow_unsigned: bool, policy_file: str | Path | None = None) -> None:
    """Fail closed: loading an unverified model must be asked for in so many words.

    No ``policy`` at all falls back to the trust policy file (``policy_file``,
    ``$OMSIGN_POLICY``, the user's, the system's); with none in force the load is refused.
    """
    if policy is MISSING:
        from .trust import load_in_force

        loaded, why = load_in_force(policy_file)
        if loaded is None:
            raise UsageError(
                f"no policy given for a verified load ({why})",
                hint="pass policy=KeyPolicy(...)/IdentityPolicy(...), set OMSIGN_POLICY to a policy file, "
                "or policy=None with allow_unsigned=True",
            )
        return
    if policy is None and not allow_unsigned:
        raise UsageError(
            "policy=None loads an unverified model: refused without allow_unsigned=True",
            hint="pass allow_unsigned=True as well if that is really meant",
        )


def snapshot(
    ref: str | Reference,
    policy: Any = MISSING,
    *,
    allow_unsigned: bool = False,
    options: StoreOptions | None = None,
    cache_dir: str | Path | None = None,
    reporter: Reporter | None = None,
    rehash: bool = False,
    policy_file: str | Path | None = None,
) -> Path:
    """The local folder of a verified model, downloaded only when its digest is not cached.

    ``policy``: a ``verify.policy`` object; when not given, the trust policy file
    (``policy_file``, ``$OMSIGN_POLICY``, the user's, the system's) must have a scope for the
    model (none is a ``UsageError``; an enforce-mode refusal a ``VerificationError``; a
    warn-mode failure is logged and the model loaded); ``None`` together with
    ``allow_unsigned=True`` loads a model nobody signed (never the default). ``rehash``
    hashes every cached file instead of trusting the digest cache (whoever can write the
    digest database can vouch for a file, so it shares the cache folder's trust boundary).
    """
    return resolve_snapshot(
        ref, policy, allow_unsigned=allow_unsigned, options=options, cache_dir=cache_dir, reporter=reporter,
        rehash=rehash, policy_file=policy_file,
    ).path


def resolve_snapshot(
    ref: str | Reference,
    policy: Any = MISSING,
    *,
    allow_unsigned: bool = False,
    options: StoreOptions | None = None,
    cache_dir: str | Path | None = None,
    reporter: Reporter | None = None,
    digest_cache: DigestCache | None = None,
    rehash: bool = False,
    policy_file: str | Path | None = None,
) -> Snapshot:
    """``snapshot`` with the details: digests of every file (for load-time guards), what moved."""
    from .model.unpack import layer_digests, parse_model_manifest
    from .trust import enforce_policy_file, load_in_force
    from .verify.discover import discover

    check_policy(policy, allow_unsigned, policy_file)
    loaded, why = load_in_force(policy_file) if policy is MISSING else (None, "")
    reference = parse_reference(ref) if isinstance(ref, str) else ref
    options = options or StoreOptions()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    home = model_dir(reference, root)
    store = open_store(reference, options)
    cache = DigestCache(enabled=False) if rehash else (digest_cache or DigestCache())
    try:
        desc = store.resolve(reference.identifier)  # once: everything below uses the digest
        manifest = store.get_manifest(desc.digest)
        model = parse_model_manifest(manifest.data, store.limits)
        verification = None
        trust = None
        if policy is MISSING:
            trust = enforce_policy_file(
                store, reference, manifest.descriptor, loaded, why=why, layer_digests=layer_digests(model),
                required=True,
            )
            verification = trust.verification
            if trust.warned:
                import logging

                logging.getLogger("oci_model_sign").warning("omsign: warning: %s", trust.reason)
        elif policy is not None:
            found = discover(store, manifest.descriptor, policy, layer_digests=layer_digests(model))
            verification = found.result
            verification.raise_if_failed()
        if model.format == "kitops":  # its file paths live in the config blob
            model = _with_config(store, manifest, model)
        if reference.tag and not reference.digest:
            _record_ref(home, reference.tag, desc.digest)
        hexpart = desc.digest.split(":", 1)[1]
        snap = Snapshot(
            path=home / SNAPSHOTS / hexpart,
            digest=desc.digest,
            reference=str(reference.pinned(desc.digest)),
            verification=verification,
            trust=trust,
        )
        with _locked(home / LOCKS / f"{hexpart}.lock"):
            if snap.path.is_dir() and not snap.path.is_symlink():
                _repair(store, reference, manifest, model, snap, cache, options, reporter)
            else:
                _create(store, reference, manifest, model, snap, cache, options, reporter)
        return snap
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
        if digest_cache is None:
            cache.close()


# -- creation and repair -----------------------------------------------------------------------
def _with_config(store: Store, manifest: ManifestData, model: ModelManifest) -> ModelManifest:
    from .transfer import with_config

    return with_config(store, manifest, model)


def _members_file(snap: Snapshot) -> Path:
    return snap.path.parent / f"{snap.path.name}.members.json"


def _create(
    store: Store,
    reference: Reference,
    manifest: ManifestData,
    model: ModelManifest,
    snap: Snapshot,
    cache: DigestCache,
    options: StoreOptions,
    reporter: Reporter | None,
) -> None:
    from .model.unpack import layer_digests
    from .transfer import pull_model

    if os.path.lexists(snap.path):  # a symlink or a file where the folder belongs
        _remove(snap.path)
    model = _with_config(store, manifest, model)
    # pull_model stages beside the folder and renames the whole folder in when all verified.
    result = pull_model(
        store, reference, manifest, model, snap.path, concurrency=options.concurrency, reporter=reporter
    )
    signed = layer_digests(model)
    members: dict[str, str] = {}
    for rel in _walk_files(snap.path):
        if rel in signed:
            continue
        members[rel] = hash_file(str(snap.path / rel))[0]
    if members:
        _write_atomic(_members_file(snap), json.dumps(members, sort_keys=True).encode())
    snap.files = {**members, **signed}
    for rel, digest in snap.files.items():
        path = snap.path / rel
        with contextlib.suppress(OSError):
            os.chmod(path, 0o444)  # a reminder, not a defence: the owner can write anyway
            cache.put(path, os.lstat(path), digest)
    snap.fetched = [f.path for f in result.files]
    snap.downloaded_bytes = result.downloaded_bytes


def _repair(
    store: Store,
    reference: Reference,
    manifest: ManifestData,
    model: ModelManifest,
    snap: Snapshot,
    cache: DigestCache,
    options: StoreOptions,
    reporter: Reporter | None,
) -> None:
    from .model.unpack import layer_digests
    from .transfer import pull_model

    expected = {**_read_members(snap), **layer_digests(model)}
    tar_layers = any(e.is_tar for e in model.files)
    if tar_layers and not _members_file(snap).exists():
        # The record of tar members is gone: nothing to check them against, so start afresh.
        _remove(snap.path)
        _create(store, reference, manifest, model, snap, cache, options, reporter)
        return
    for rel in _walk_files(snap.path, include_links=True):
        if rel not in expected:
            _remove(snap.path / rel)  # not signed: a framework must not find it
    bad = [rel for rel, digest in expected.items() if not _matches(snap.path / rel, digest, cache)]
    snap.files = expected
    if not bad:
        return
    for rel in bad:
        if os.path.lexists(snap.path / rel):
            _remove(snap.path / rel)
    model = _with_config(store, manifest, model)
    # pull places a whole verified tree into an empty folder, so the files to mend are fetched
    # into a fresh sibling (same filesystem) and renamed into the snapshot one by one.
    mend = snap.path.parent / f".mend-{snap.path.name[:16]}-{secrets.token_hex(4)}"
    try:
        result = pull_model(
            store,
            reference,
            manifest,
            model,
            mend,
            include=bad,
            concurrency=options.concurrency,
            reporter=reporter,
        )
        for rel in bad:
            fetched = mend / rel
            if os.path.lexists(fetched):
                (snap.path / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(fetched, snap.path / rel)
    finally:
        _remove(mend)
    for rel in bad:
        path = snap.path / rel
        try:
            os.chmod(path, 0o444)
            st = os.lstat(path)
        except OSError as exc:
            raise InputError(f"{rel} is missing from {snap.path} after it was fetched again") from exc
        if rel in layer_digests(model):
            cache.put(path, st, expected[rel])
        elif not _matches(path, expected[rel], cache):
            raise InputError(f"{rel} from its tar layer no longer matches the digest recorded for it",
                             hint=f"remove {snap.path} to fetch the model afresh")
    snap.fetched = [f.path for f in result.files]
    snap.downloaded_bytes = result.downloaded_bytes


def _matches(path: Path, digest: str, cache: DigestCache) -> bool:
    """True if ``path`` is a regular file whose bytes have ``digest`` (digest cache first)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if cache.get(path, st) == digest:
        return True
    try:
        actual, _ = hash_file(str(path), digest.split(":", 1)[0])
        after = os.lstat(path)
    except (OSError, ValueError):
        return False
    if actual != digest:
        return False
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == (
        st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
    ):
        cache.put(path, st, digest)
    return True


def _read_members(snap: Snapshot) -> dict[str, str]:
    try:
        value = json.loads(_members_file(snap).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _walk_files(root: Path, *, include_links: bool = False) -> list[str]:
    """Relative POSIX paths of the files (and, with ``include_links``, anything not a folder)."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        names = list(filenames)
        if include_links:
            names += [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in names:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            out.append(rel)
    return sorted(out)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            import shutil

            for dirpath, _, _ in os.walk(path):
                os.chmod(dirpath, 0o755)
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"cannot remove {path} from the model cache: {exc.strerror or exc}") from exc


def _record_ref(home: Path, tag: str, digest: str) -> None:
    """Informational, like the Hugging Face cache's ``refs/``: never read to skip a resolve."""
    with contextlib.suppress(OSError):
        _write_atomic(home / REFS / tag, digest.encode() + b"\n")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held by one process at a time (released if it dies)."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"cannot create the model cache lock {path}: {exc.strerror or exc}",
                         hint="pass cache_dir= a writable folder, or set XDG_CACHE_HOME") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


__all__ = ["MISSING", "Snapshot", "default_cache_dir", "resolve_snapshot", "snapshot"]


class _CallableModule(types.ModuleType):
    """``oci_model_sign.snapshot(ref, policy)`` works although ``snapshot`` is also this module's
    name: importing a submodule binds the module, not the function, on the package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Path:
        return snapshot(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
