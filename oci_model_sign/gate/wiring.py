"""The gate's parts built from the code the CLI runs: ``api.verify`` decides, ``copy`` promotes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import IntegrityError, LimitError, VerificationError
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


def copy_promoter(options: StoreOptions, policy_for: PolicyFor) -> Callable[[str, str], None]:
    """Promote with ``omsign copy --verify``: signatures travel along, every blob is re-hashed
    on its way, and nothing lands in the trusted namespace unless the source verifies again."""
    from ..promote import copy

    def promote(source: str, destination: str) -> None:
        chosen = policy_for(source)
        copy(source, destination, src_options=options, dst_options=options, policy=chosen[0] if chosen else None)

    return promote
