"""What several pages need: finding a latent by its number or its label, as typed into a
form."""

from starlette.datastructures import MultiDict

from app.services import annotations
from app.services.context import Context


def resolve_latent(
    ctx: Context, sae_id: str | None, raw: str | None, required: bool = True
) -> tuple[int | None, str | None]:
    """A latent from its number ('12', '#12') or its label (exact, else a unique part):
    (latent, None), or (None, a message for the form)."""
    raw = (raw or "").strip()
    if not raw:
        if required:
            return None, "Enter a latent number, or a label such as 'villain persona'."
        return None, None
    number = raw.removeprefix("#")
    if number.lstrip("-").isdigit():
        value = int(number)
        return (None, "Latent numbers start at 0.") if value < 0 else (value, None)
    if not sae_id or sae_id not in ctx.registry.saes:
        return None, None  # the SAE's own error is shown on its field
    found = annotations.find_by_label(ctx, sae_id, raw)
    if len(found) == 1:
        return found[0]["latent"], None
    if not found:
        return None, (
            f"No latent of SAE '{sae_id}' is labelled '{raw}'. Enter its number, or label it "
            "on its latent page."
        )
    listed = ", ".join(f"{x['latent']} ({x['label']})" for x in found[:8])
    return None, f"'{raw}' matches several latents: {listed}. Enter the number."


def with_latent(params, ctx: Context, sae_id: str | None, name: str = "latent", **kw):
    """`params` (a copy) with a latent typed as a label replaced by its number, the text as
    typed, and the message when it names no single latent."""
    out = MultiDict(params.multi_items())
    typed = out.get(name)
    latent, error = resolve_latent(ctx, sae_id, typed, **kw) if typed is not None else (None, None)
    if typed is not None:
        out.setlist(name, [] if latent is None else [str(latent)])
    return out, typed, error
