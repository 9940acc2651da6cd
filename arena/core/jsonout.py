"""JSON that every parser accepts: NaN and infinities become null.

Python's json writes NaN/Infinity by default, which JavaScript's JSON.parse, jq and most other parsers refuse;
a missing value (an interval without bootstrap, a rate over zero items) is null instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (also inside dicts, lists and numpy scalars) replaced by None."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps of ``finite(value)``; allow_nan=False so a NaN that slips through fails loudly here."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
