"""`POST /_shoprank/recommend`: recommendations in the ES hits shape (read scope, like
`_search`). The shopper comes from the body's `user_id`, the `X-Shoprank-User` header or
`?user_id=` (and `X-Shoprank-Session` / `?session_id=`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from shoprank.errors import BackendUnavailableError, ShoprankError
from shoprank.plugin.bounds import bounded, check_index_name, current_deadline, request_deadline
from shoprank.plugin.recommend.service import RecommendService
from shoprank.plugin.routes.common import (
    AcceptDep,
    ESResponse,
    SessionDep,
    UserDep,
    check_params,
    error_response,
    json_body,
    respond,
)

router = APIRouter(tags=["recommendations"])


def get_recommender(request: Request) -> RecommendService:
    """The app's recommendation service (`create_app` builds it over its search service)."""
    recommender: RecommendService = request.app.state.recommend
    return recommender


RecommenderDep = Annotated[RecommendService, Depends(get_recommender)]


def guarded_recommend(
    recommender: RecommendService, body: dict[str, Any] | None, **kw: Any
) -> dict[str, Any]:
    """One recommendation under the request's time budget; a backend that cannot answer
    is a 503 (retry), as for `_search`."""
    if isinstance(body, dict) and isinstance(body.get("index"), str):
        check_index_name(body["index"])
    outer = current_deadline()
    deadline = outer if outer is not None else request_deadline(recommender.settings)
    try:
        with bounded(deadline):
            result = recommender.recommend(body, **kw)
    except (ConnectionError, TimeoutError, OSError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise BackendUnavailableError(
            f"the search backend cannot answer ({type(exc).__name__}: {detail}); retry later"
        ) from exc
    if deadline is not None and deadline.expired:
        result["timed_out"] = True
    return result


@router.post("/_shoprank/recommend")
async def recommend(
    request: Request,
    recommender: RecommenderDep,
    user: UserDep,
    session: SessionDep,
    accept: AcceptDep,
) -> ESResponse:
    """Recommendations: `similar`, `bought_together`, `for_you` or `trending` (see the
    README's "Recommendations")."""
    try:
        params = check_params(request, {"user_id", "session_id"})
        body = await json_body(request)
    except ShoprankError as exc:
        return error_response(exc, accept)
    user_id = params.get("user_id") or user
    session_id = params.get("session_id") or session
    return await respond(
        lambda: guarded_recommend(recommender, body, user_id=user_id, session_id=session_id),
        accept,
    )
