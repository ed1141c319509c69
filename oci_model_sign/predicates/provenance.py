"""SLSA v1 provenance for a model: where it was built, from which source, base model and data.

Provenance answers incident-response questions ("which models were trained on dataset X?",
"which pipeline produced this?"). The CI system is read from its documented environment
variables only, never from the whole environment, so no token or secret can end up signed
into a public attestation. ``resolvedDependencies`` holds the source commit and every input
artifact (base model, datasets) by digest, as in-toto ResourceDescriptors, with the
annotation ``omsign.dev/role`` saying what each one was for.

Build types: GitHub Actions uses GitHub's own ``workflow/v1`` build type; GitLab CI and
everything else use omsign's, documented in ``docs/predicates/README.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import InputError
from .evaluation import digest_set

GITHUB_WORKFLOW_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
GITLAB_CI_BUILD_TYPE = "https://omsign.dev/buildtypes/gitlab-ci/v1"
GENERIC_BUILD_TYPE = "https://omsign.dev/buildtypes/generic/v1"
LOCAL_BUILDER_ID = "https://omsign.dev/builders/local"
ROLE_ANNOTATION = "omsign.dev/role"

ROLES = ("base-model", "dataset", "source", "code", "other")

_OCI_REF_RE = re.compile(r"^(?P<repo>[^@\s]+?)(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?@(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class Artifact:
    """An input of the build named by digest: a base model, a dataset, a code bundle."""

    role: str
    digest: Mapping[str, str] | str
    name: str | None = None
    uri: str | None = None
    media_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def descriptor(self) -> dict[str, Any]:
        """The in-toto ResourceDescriptor (field names as ``resource_descriptor.md``)."""
        if self.role not in ROLES:
            raise InputError(f"artifact role {self.role!r} is not one of {', '.join(ROLES)}")
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.uri:
            out["uri"] = self.uri
        out["digest"] = digest_set(self.digest, f"{self.role} digest")
        if self.media_type:
            out["mediaType"] = self.media_type
        out["annotations"] = {**dict(self.annotations), ROLE_ANNOTATION: self.role}
        return out


def oci_artifact(reference: str, role: str, media_type: str | None = None) -> Artifact:
    """An Artifact for ``registry/repo[:tag]@sha256:<hex>``: an OCI artifact named by digest.

    The ``uri`` is its package URL (``pkg:oci/<name>@sha256%3A…?repository_url=<registry/repo>``),
    the form SLSA and SBOM tools already use for images; ``name`` is the repository, as in a
    statement subject. A reference without a digest is refused: provenance that names a tag
    names whatever the tag points at tomorrow.
    """
    from packageurl import PackageURL

    m = _OCI_REF_RE.match(reference)
    if not m:
        raise InputError(
            f"{role} {reference!r} must be an OCI reference with a digest",
            hint="registry/repo@sha256:<64 hex> (resolve the tag first)",
        )
    repo, digest = m.group("repo"), m.group("digest")
    purl = PackageURL(
        type="oci",
        name=repo.rsplit("/", 1)[-1].lower(),
        version=digest,
        qualifiers={"repository_url": repo},
    ).to_string()
    return Artifact(role=role, digest=digest, name=repo, uri=purl, media_type=media_type)


@dataclass(frozen=True)
class CIEnvironment:
    """What the CI system says about the running job, in SLSA terms."""

    kind: str  # "github-actions" | "gitlab-ci" | "generic"
    build_type: str
    builder_id: str
    external_parameters: dict[str, Any]
    internal_parameters: dict[str, Any]
    invocation_id: str | None
    source: dict[str, Any] | None
    started_on: str | None = None


def _get(env: Mapping[str, str], name: str) -> str | None:
    v = env.get(name)
    return v if v else None


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def _github(env: Mapping[str, str]) -> CIEnvironment:
    server = (_get(env, "GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    repo = _get(env, "GITHUB_REPOSITORY")
    ref = _get(env, "GITHUB_REF")
    workflow_ref = _get(env, "GITHUB_WORKFLOW_REF")  # owner/repo/.github/workflows/x.yml@refs/…
    if not repo or not workflow_ref:
        raise InputError("GitHub Actions environment without GITHUB_REPOSITORY or GITHUB_WORKFLOW_REF")
    repo_url = f"{server}/{repo}"
    path = workflow_ref
    if path.startswith(repo + "/"):
        path = path[len(repo) + 1 :]
    if ref and path.endswith("@" + ref):
        path = path[: -(len(ref) + 1)]
    elif "@" in path:
        path = path.rsplit("@", 1)[0]
    run_id, attempt = _get(env, "GITHUB_RUN_ID"), _get(env, "GITHUB_RUN_ATTEMPT") or "1"
    sha = _get(env, "GITHUB_SHA")
    return CIEnvironment(
        kind="github-actions",
        build_type=GITHUB_WORKFLOW_BUILD_TYPE,
        # the workflow that ran omsign; a reusable workflow's own ref (job_workflow_ref) is
        # only in the OIDC token, which omsign does not read here
        builder_id=f"{server}/{workflow_ref}",
        external_parameters={
            "workflow": _drop_none({"ref": ref, "repository": repo_url, "path": path}),
            **_drop_none({"runner_environment": _get(env, "RUNNER_ENVIRONMENT")}),
        },
        internal_parameters=_drop_none(
            {
                "github": _drop_none(
                    {
                        "event_name": _get(env, "GITHUB_EVENT_NAME"),
                        "repository_id": _get(env, "GITHUB_REPOSITORY_ID"),
                        "repository_owner_id": _get(env, "GITHUB_REPOSITORY_OWNER_ID"),
                    }
                )
            }
        ),
        invocation_id=f"{repo_url}/actions/runs/{run_id}/attempts/{attempt}" if run_id else None,
        source=(
            {"uri": f"git+{repo_url}@{ref}" if ref else f"git+{repo_url}", "digest": {"gitCommit": sha}}
            if sha
            else None
        ),
    )


def _gitlab(env: Mapping[str, str]) -> CIEnvironment:
    project_url = _get(env, "CI_PROJECT_URL")
    if not project_url:
        raise InputError("GitLab CI environment without CI_PROJECT_URL")
    server = (_get(env, "CI_SERVER_URL") or project_url.rsplit("/", 2)[0]).rstrip("/")
    tag = _get(env, "CI_COMMIT_TAG")
    branch = _get(env, "CI_COMMIT_BRANCH") or _get(env, "CI_COMMIT_REF_NAME")
    ref = f"refs/tags/{tag}" if tag else (f"refs/heads/{branch}" if branch else None)
    sha = _get(env, "CI_COMMIT_SHA")
    project_path = _get(env, "CI_PROJECT_PATH") or project_url.split("://", 1)[-1].split("/", 1)[-1]
    runner = _get(env, "CI_RUNNER_ID")
    return CIEnvironment(
        kind="gitlab-ci",
        build_type=GITLAB_CI_BUILD_TYPE,
        # the runner that executed the job, in the form GitLab's own runner provenance uses
        builder_id=f"{server}/{project_path}/-/runners/{runner}" if runner else f"{server}/{project_path}",
        external_parameters={
            "pipeline": _drop_none(
                {
                    "repository": project_url,
                    "ref": ref,
                    "path": _get(env, "CI_CONFIG_PATH") or ".gitlab-ci.yml",
                }
            ),
            **_drop_none({"source": _get(env, "CI_PIPELINE_SOURCE"), "job": _get(env, "CI_JOB_NAME")}),
        },
        internal_parameters={
            "gitlab": _drop_none(
                {
                    "project_id": _get(env, "CI_PROJECT_ID"),
                    "pipeline_id": _get(env, "CI_PIPELINE_ID"),
                    "job_id": _get(env, "CI_JOB_ID"),
                    "runner_id": runner,
                    "runner_description": _get(env, "CI_RUNNER_DESCRIPTION"),
                    "server_version": _get(env, "CI_SERVER_VERSION"),
                }
            )
        },
        invocation_id=_get(env, "CI_JOB_URL"),
        source=(
            {"uri": f"git+{project_url}@{ref}" if ref else f"git+{project_url}", "digest": {"gitCommit": sha}}
            if sha
            else None
        ),
        started_on=_get(env, "CI_JOB_STARTED_AT"),
    )


def ci_environment(env: Mapping[str, str] | None = None) -> CIEnvironment:
    """Detect GitHub Actions (``GITHUB_ACTIONS=true``), GitLab CI (``GITLAB_CI=true``), or neither."""
    e = os.environ if env is None else env
    if e.get("GITHUB_ACTIONS") == "true":
        return _github(e)
    if e.get("GITLAB_CI") == "true":
        return _gitlab(e)
    return CIEnvironment(
        kind="generic",
        build_type=GENERIC_BUILD_TYPE,
        builder_id=_get(e, "OMSIGN_BUILDER_ID") or LOCAL_BUILDER_ID,
        external_parameters={},
        internal_parameters={},
        invocation_id=_get(e, "OMSIGN_INVOCATION_ID"),
        source=None,
    )


def _timestamp(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise InputError("provenance timestamps must carry a time zone")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _omsign_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("oci-model-sign")
    except PackageNotFoundError:
        return "unknown"


def slsa_provenance(
    *,
    dependencies: Sequence[Artifact] = (),
    env: Mapping[str, str] | None = None,
    external_parameters: Mapping[str, Any] | None = None,
    builder_id: str | None = None,
    started_on: datetime | str | None = None,
    finished_on: datetime | str | None = None,
) -> dict[str, Any]:
    """The SLSA provenance v1 predicate (``https://slsa.dev/provenance/v1``) for this job.

    ``external_parameters`` are merged over what the CI says (e.g. the training config the
    user names); ``builder_id`` overrides the detected one. ``finished_on`` defaults to now:
    omsign runs when the model is complete.
    """
    ci = ci_environment(env)
    resolved: list[dict[str, Any]] = []
    if ci.source:
        resolved.append({**ci.source, "annotations": {ROLE_ANNOTATION: "source"}})
    resolved.extend(a.descriptor() for a in dependencies)
    build_definition: dict[str, Any] = {
        "buildType": ci.build_type,
        "externalParameters": {**ci.external_parameters, **dict(external_parameters or {})},
    }
    if ci.internal_parameters:
        build_definition["internalParameters"] = ci.internal_parameters
    if resolved:
        build_definition["resolvedDependencies"] = resolved
    metadata = _drop_none(
        {
            "invocationId": ci.invocation_id,
            "startedOn": _timestamp(started_on) or ci.started_on,
            "finishedOn": _timestamp(finished_on) or _timestamp(datetime.now(timezone.utc)),
        }
    )
    run_details: dict[str, Any] = {
        "builder": {"id": builder_id or ci.builder_id, "version": {"omsign": _omsign_version()}},
    }
    if metadata:
        run_details["metadata"] = metadata
    return {"buildDefinition": build_definition, "runDetails": run_details}


@dataclass(frozen=True)
class Link:
    """An artifact that an attestation says this model came from (for ``tree``)."""

    role: str
    digest: dict[str, str]
    name: str | None = None
    uri: str | None = None


def provenance_links(predicate: object) -> list[Link]:
    """The inputs named by digest in a SLSA v1 predicate, read defensively (it is untrusted data).

    Entries without a digest map, or with non-string fields, are skipped rather than trusted;
    an entry without the ``omsign.dev/role`` annotation is reported with role ``other``.
    """
    if not isinstance(predicate, Mapping):
        return []
    bd = predicate.get("buildDefinition")
    deps = bd.get("resolvedDependencies") if isinstance(bd, Mapping) else None
    links: list[Link] = []
    for d in deps if isinstance(deps, list) else []:
        if not isinstance(d, Mapping):
            continue
        digest = d.get("digest")
        if not isinstance(digest, Mapping) or not digest:
            continue
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in digest.items()):
            continue
        ann = d.get("annotations")
        role = ann.get(ROLE_ANNOTATION) if isinstance(ann, Mapping) else None
        name, uri = d.get("name"), d.get("uri")
        links.append(
            Link(
                role=role if isinstance(role, str) and role in ROLES else "other",
                digest=dict(digest),
                name=name if isinstance(name, str) else None,
                uri=uri if isinstance(uri, str) else None,
            )
        )
    return links
