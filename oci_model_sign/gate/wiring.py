"""The gate's parts built from the code the CLI runs: ``api.verify`` decides, ``copy`` promotes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, LimitError, NotFoundError, VerificationError
from ..reference import parse_reference
from ..store import open_store
from ..store.base import StoreOptions
from .service import Evaluator, ManifestReader, Verdict

PolicyFor = Callable[[str], "tuple[Any, bool] | None"]  # reference -> (policy, enforced) or None


def verdict_from_result(result: Any, *, enforced: bool = True) -> Verdict:
    """A ``VerificationResult`` as the gate records it."""
    signers = sorted({c.signer for c in result.candidates if c.ok and c.signer})
    attestations = sorted(
        {c.predicate_type for c in result.candidates if c.predicate_type and c.kind == "attestation"}
    )
    return Verdict(bool(result.ok), result.summary(), signers, attestations, enforced=enforced)


def policy_evaluator(policy_for: PolicyFor, options: StoreOptions) -> Evaluator:
    """Verify with the policy that applies to the reference; no policy means not admitted."""
    from .. import api

    def evaluate(reference: str) -> Verdict:
        chosen = policy_for(reference)
        if chosen is None:
            return Verdict(False, "no policy scope covers this repository: nothing is admitted unverified")
        policy, enforced = chosen
        try:
            result = api.verify(reference, policy, options=options)
        except (IntegrityError, LimitError, VerificationError) as exc:
            return Verdict(False, exc.one_line(), enforced=enforced)
        return verdict_from_result(result, enforced=enforced)

    return evaluate


def manifest_reader(registry: str, options: StoreOptions) -> ManifestReader:
    def read(repository: str, digest: str) -> bytes:
        store = open_store(parse_reference(f"{registry}/{repository}@{digest}"), options)
        try:
            return store.get_manifest(digest).data
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()

    return read


def trust_evaluator(policy: Path, options: StoreOptions) -> Evaluator:
    """Verdicts from the trust policy file, by the code ``pull`` runs (``trust.check_trust``)."""
    from ..trust import check_trust

    def evaluate(reference: str) -> Verdict:
        try:
            outcome = check_trust(reference, policy=policy, options=options)
        except (IntegrityError, LimitError, VerificationError) as exc:
            return Verdict(False, exc.one_line())
        except NotFoundError as exc:
            if "not a model" in exc.message:  # a container image or an index: never promoted
                return Verdict(False, exc.one_line(), is_model=False)
            raise  # the manifest is not there (yet): the gate retries
        if not outcome.applies:
            return Verdict(False, "no policy scope covers this repository: nothing is admitted unverified")
        if outcome.allowed:
            try:
                check_blobs(reference, options)
            except (IntegrityError, LimitError) as exc:
                return Verdict(False, f"signed, but its stored bytes do not match: {exc.one_line()}")
        return Verdict(
            outcome.allowed and not outcome.warned,  # warn mode: recorded as warned, promoted anyway
            outcome.reason,
            [s.describe() for s in outcome.signers],
            list(outcome.attestations),
            enforced=outcome.enforced,
        )

    return evaluate


class _Discard:
    """A sink for ``fetch_blob``: the store hashes and checks the bytes; nothing is kept."""

    def write(self, data: bytes) -> int:
        return len(data)

    def tell(self) -> int:
        raise OSError("a discarding sink has no position")  # resumes use Range, never a rewind

    def flush(self) -> None:
        return None


def check_blobs(reference: str, options: StoreOptions) -> None:
    """Read every blob of the model as the registry stores it and check it against its digest.

    A signature names the manifest, and the manifest names the blobs, but a registry serves
    whatever its storage holds: a blob rewritten on the registry's disk keeps its name. Within
    one registry a promotion mounts blobs without reading them, so the gate reads them once
    here, streaming (memory stays flat whatever the model's size).
    """
    from ..limits import load_json
    from ..oci.descriptor import Descriptor

    store = open_store(parse_reference(reference), options)
    try:
        ref = parse_reference(reference)
        manifest = store.get_manifest(ref.digest or ref.identifier)
        value = load_json(manifest.data, max_bytes=store.limits.manifest_bytes, depth=store.limits.json_depth, what="manifest")
        if not isinstance(value, dict):
            raise IntegrityError("the manifest is not a JSON object")
        blobs = [value.get("config"), *(value.get("layers") or [])]
        for raw in blobs:
            if raw is None:
                continue
            desc = Descriptor.from_json(raw)
            store.fetch_blob(desc, _Discard())  # type: ignore[arg-type]
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def copy_promoter(options: StoreOptions, policy: Path) -> Callable[[str, str], None]:
    """Promote with ``omsign copy --verify``: signatures travel along, every blob is re-hashed
    on its way, and nothing lands in the trusted namespace unless the source verifies again."""
    from ..promote import copy

    def promote(source: str, destination: str) -> None:
        copy(source, destination, src_options=options, dst_options=options, policy_file=policy)

    return promote
