"""``verify-local``: check a model folder against a model_signing ``model.sig``, offline.

Compatible both ways with model_signing 1.1.1 (``files`` serialization): the signature is
verified first (nothing is hashed for a signature that does not hold), then every file is read
exactly once, in parallel threads (hashlib releases the GIL, so hashing scales with cores and
disks), and the result compared with the signed resources.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from ..digest import hash_file
from ..errors import InputError, LimitError, UsageError
from ..limits import default_limits
from ..signing.modelsig import DEFAULT_SIGNATURE_NAME, GIT_IGNORE_PATHS
from .bundle import compare_resources, verify_model_signature
from .policy import Policy
from .rejection import CandidateRejected
from .result import CandidateResult, VerificationResult

DEFAULT_IGNORED = GIT_IGNORE_PATHS  # model_signing's default: the git files


def _is_ignored(rel: PurePosixPath, ignored: list[PurePosixPath]) -> bool:
    return any(rel == ig or rel.is_relative_to(ig) for ig in ignored)


def list_model_files(
    model_dir: Path, ignored: list[PurePosixPath], *, allow_symlinks: bool
) -> list[tuple[str, Path]]:
    """(relative POSIX path, path to read) for every file to hash, as model_signing walks it.

    Symlinks are an error unless allowed (then the target is hashed under the link's name);
    sockets, FIFOs and devices are always an error.
    """
    found: list[tuple[str, Path]] = []
    stack = [model_dir]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            raise InputError(f"cannot list {current}: {exc.strerror}") from exc
        for entry in entries:
            path = Path(entry.path)
            rel = PurePosixPath(path.relative_to(model_dir).as_posix())
            if _is_ignored(rel, ignored):
                continue
            if entry.is_symlink():
                if not allow_symlinks:
                    raise InputError(
                        f"{rel} is a symbolic link",
                        hint="pass --allow-symlinks to hash link targets (as model_signing --allow_symlinks)",
                    )
                if not path.is_file():
                    raise InputError(f"{rel} is a symbolic link to something that is not a regular file")
                found.append((str(rel), path))
            elif entry.is_dir(follow_symlinks=False):
                stack.append(path)
            elif entry.is_file(follow_symlinks=False):
                found.append((str(rel), path))
            else:
                raise InputError(f"{rel} is not a regular file or directory (socket, FIFO or device)")
    limit = default_limits().layers
    if len(found) > limit:
        raise LimitError(f"the model folder has {len(found)} files, over the limit of {limit}")
    return found


def hash_model_files(
    files: list[tuple[str, Path]], algorithm: str, *, max_workers: int | None = None
) -> dict[str, str]:
    """relative path -> ``<algorithm>:<hex>``, hashing files concurrently (each read once)."""
    workers = max_workers or min(32, (os.cpu_count() or 1) + 4)

    def one(item: tuple[str, Path]) -> tuple[str, str]:
        try:
            digest, _ = hash_file(str(item[1]), algorithm)
        except OSError as exc:
            raise InputError(f"cannot read {item[0]}: {exc.strerror}") from exc
        return item[0], digest

    if workers <= 1 or len(files) <= 1:
        return dict(one(f) for f in files)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, files))


def verify_local(
    model_dir: str | Path,
    signature: str | Path | None = None,
    policy: Policy | None = None,
    *,
    ignore_paths: list[str] | None = None,
    allow_symlinks: bool = False,
    max_workers: int | None = None,
) -> VerificationResult:
    """Verify ``model_dir`` against the model_signing bundle ``signature`` (default
    ``DIR/model.sig``, where ``pull --verify`` writes it) under ``policy``.

    Excluded from hashing: the signature file itself, the default git paths, the
    ``ignore_paths`` recorded in the signature and those given here (relative to
    ``model_dir``). The result's failure reason lists modified, missing and unsigned files.
    """
    model_dir = Path(model_dir)
    signature = Path(signature) if signature is not None else model_dir / DEFAULT_SIGNATURE_NAME
    if policy is None:
        raise UsageError("no policy, no verification", hint="pass a KeyPolicy, IdentityPolicy or CertificateChainPolicy")
    if not model_dir.is_dir():
        raise InputError(f"model folder {model_dir} does not exist or is not a directory")
    try:
        bundle_bytes = signature.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read signature {signature}: {exc.strerror}") from exc
    source = str(signature)
    try:
        sig = verify_model_signature(bundle_bytes, policy.for_model_signing(), source=source)
    except CandidateRejected as exc:
        failed = CandidateResult(source, False, str(exc), None, None, {}, "model-signing-bundle")
        return VerificationResult(str(model_dir), False, None, [failed])

    ignored = [PurePosixPath(p) for p in DEFAULT_IGNORED]
    for raw in [*sig.ignore_paths, *(ignore_paths or [])]:
        rel = PurePosixPath(raw.replace(os.sep, "/"))
        if rel.is_absolute() or ".." in rel.parts:
            candidate = Path(raw)
            try:
                rel = PurePosixPath(candidate.resolve().relative_to(model_dir.resolve()).as_posix())
            except ValueError:
                continue  # outside the model: nothing to ignore
        ignored.append(rel)
    try:
        sig_rel = signature.resolve().relative_to(model_dir.resolve())
        ignored.append(PurePosixPath(sig_rel.as_posix()))
    except ValueError:
        pass

    files = list_model_files(model_dir, ignored, allow_symlinks=allow_symlinks or sig.allow_symlinks)
    actual = hash_model_files(files, sig.hash_type, max_workers=max_workers)
    problem = compare_resources(sig.resources, actual, "the folder")
    if problem is not None:
        failed = CandidateResult(
            source, False, problem, sig.result.signer, sig.result.predicate_type, {}, "model-signing-bundle"
        )
        return VerificationResult(sig.root_digest, False, None, [failed])
    return VerificationResult(sig.root_digest, True, sig.result, [sig.result])
