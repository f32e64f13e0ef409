"""An instant from a client is an RFC 3339 date-time, as the API's schema says
("2026-11-01T00:00:00Z"). Pydantic alone also reads a number as Unix seconds (`?since=0.0` was
1970-01-01), which the schema does not allow and no client means: refused here, so the 422 names
the field like any other validation error.

    since: Annotated[AwareDatetime | None, Query(), RFC_3339] = None
"""

from __future__ import annotations

import re
from decimal import Decimal

from pydantic import BeforeValidator

NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    if isinstance(value, int | float | Decimal) or (isinstance(value, str) and NUMBER.fullmatch(value)):
        raise ValueError("must be an RFC 3339 date-time such as 2026-11-01T00:00:00Z, not a number")
    return value


RFC_3339 = BeforeValidator(_not_a_number)
