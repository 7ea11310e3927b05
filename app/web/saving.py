"""The pages' "save" buttons: store a request as a run, then answer with its share link
(the `saved` partial for htmx) or redirect to it (a plain form post)."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from app.errors import DomainError
from app.schemas.fields import TITLE_LENGTH
from app.schemas.runs import RunCreate
from app.services import runs
from app.services.context import Context
from app.web.errors import error_page
from app.web.forms import FormInput
from app.web.templating import is_htmx, render


def listing_chosen(posted) -> bool:
    """The save form's "list it publicly" checkbox: unlisted unless it was ticked."""
    return posted.get("listed") == "1"


async def save_run(
    form: FormInput,
    ctx: Context,
    kind: str,
    body: BaseModel,
    title: str,
    base: str,
    *,
    listed: bool = False,
) -> dict | None:
    """Compute and store one run; a refusal is recorded against its form field."""
    try:
        return await runs.create_run(
            ctx,
            RunCreate(
                kind=kind,
                request=body.model_dump(),
                title=title[:TITLE_LENGTH],
                unlisted=not listed,
            ),
            base,
        )
    except DomainError as exc:
        form.fail_from(exc, "title")
        return None


def saved_response(
    request: Request,
    form: FormInput,
    saved: dict | None,
    kind: str,
    base: str,
    *,
    listed: bool = False,
):
    """`kind` is "run" or "comparison" (what the share link points to); `listed`: whether
    it is listed on the home page (the message says so)."""
    if not is_htmx(request) and saved is None:
        return error_page(request, 422, " ".join(form.errors.values()) or "Nothing to save.")
    if saved is not None and not is_htmx(request):
        return RedirectResponse(saved["url"].removeprefix(base), status_code=303)
    return render(
        request,
        "partials/saved.html",
        {"saved": saved, "errors": form.errors, "kind": kind, "listed": listed},
        status_code=422 if form.errors else 201,
    )
