"""``/v2/_catalog``: the repositories of a registry, page by page, within a bound.

distribution serves the catalog in lexical order, ``n`` names per page, with a ``Link`` to
the next page. A registry with more repositories than the audit may walk is refused with a
``LimitError`` as soon as a page shows it, before any repository is opened; a registry whose
``Link`` goes nowhere new is refused as a protocol error rather than followed forever.
"""

from __future__ import annotations

from ..errors import IntegrityError, LimitError, RegistryError
from ..limits import load_json
from ..store.auth import login_hint
from ..store.registry import MAX_PAGES, parse_next_link
from ..store.session import RegistrySession, read_bounded
from ..store.transport import http_error

CATALOG_SCOPE = "registry:catalog:*"





def list_repositories(session: RegistrySession, *, limit: int, page_size: int = 100) -> list[str]:
    """Repository names on the session's host (sorted, unique); ``LimitError`` past ``limit``."""
    url: str | None = f"{session.base_url}/v2/_catalog?n={page_size}"
    names: set[str] = set()
    visited: set[str] = set()
    pages = 0
    max_bytes = session.options.limits.index_bytes
    while url:
        pages += 1
        if pages > MAX_PAGES:
            raise LimitError(f"the catalog of {session.host} spans more than {MAX_PAGES} pages")
        resp = session.send("GET", url, scopes=[CATALOG_SCOPE], stream=True)
        if resp.status_code != 200:
            raise http_error(
                resp, "the repository catalog", host=session.host, repo_name=session.host, login=login_hint(session.registry)
            )
        link = resp.headers.get("link")
        page_url = str(resp.request.url)
        data = read_bounded(
            resp, max_bytes, f"a catalog page of {session.host}", hint="raise OMSIGN_MAX_INDEX_BYTES if this is expected"
        )
        value = load_json(data, max_bytes=max_bytes, depth=8, what="repository catalog")
        repos = value.get("repositories") if isinstance(value, dict) else None
        if not isinstance(repos, list) or not all(isinstance(r, str) for r in repos):
            raise IntegrityError(f"{session.host} sent a catalog without a list of repository names")
        names.update(repos)
        if len(names) > limit:
            raise LimitError(
                f"{session.host} has more than {limit} repositories",
                hint="raise --max-repositories, or name the repositories to audit (REGISTRY/REPO ...)",
            )
        nxt = parse_next_link(link)
        visited.add(page_url)
        url = str(resp.request.url.join(nxt)) if nxt else None
        if url is not None and (not repos or url in visited):
            raise RegistryError(f"{session.host} paginates its catalog without progress (an empty page or a Link loop)")
    return sorted(names)
