"""What several pages need: finding a latent by its number or its label, as typed into a
form."""

from app.services import annotations
from app.services.context import Context
from app.web.forms import Form


def resolve_latent(
    form: Form,
    ctx: Context,
    sae_id: str | None,
    raw: str,
    name: str = "latent",
    required: bool = True,
) -> int | None:
    """A latent from its number ('12', '#12') or its label (exact, else a unique part)."""
    raw = raw.strip()
    if not raw:
        if required:
            form.fail(name, "Enter a latent number, or a label such as 'villain persona'.")
        return None
    number = raw.removeprefix("#")
    if number.lstrip("-").isdigit():
        value = int(number)
        if value < 0:
            form.fail(name, "Latent numbers start at 0.")
            return None
        return value
    if not sae_id or sae_id not in ctx.registry.saes:
        return None  # the SAE's own error is shown on its field
    found = annotations.find_by_label(ctx, sae_id, raw)
    if len(found) == 1:
        return found[0]["latent"]
    if not found:
        form.fail(
            name,
            f"No latent of SAE '{sae_id}' is labelled '{raw}'. Enter its number, or label it "
            "on its latent page.",
        )
    else:
        listed = ", ".join(f"{x['latent']} ({x['label']})" for x in found[:8])
        form.fail(name, f"'{raw}' matches several latents: {listed}. Enter the number.")
    return None
