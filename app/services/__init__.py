"""The use cases: the only code the JSON routers (`app.api`) and the HTML routers
(`app.web`) call. Routers parse, call one service function, and render.

Importing this package registers every request kind (`app.kinds`) with the service that
runs it, in the order the kinds are listed.
"""

# isort: off
from app.services import inspection, steering, diffing, evaluation  # noqa: F401, I001

# isort: on
from app.services.context import Context

__all__ = ["Context"]
