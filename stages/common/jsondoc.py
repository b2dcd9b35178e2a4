"""The small JSON documents stages hand each other (manifests, model cards, metrics, drift).

One reader that names the file on every failure, and one writer whose output is
deterministic and strict JSON, so the same input always gives the same bytes (and sha256).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["read_object", "to_json"]


def read_object(path: Path, uri: str, kind: str = "file") -> dict[str, Any]:
    """The JSON object in ``path``; ``InputError`` naming ``uri`` (and what it should be: ``kind``)
    when it is unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{uri}: not a readable JSON {kind} ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{uri}: expected a JSON object at the top level of the {kind}, found {type(data).__name__}")
    return data


def to_json(doc: Any) -> str:
    """Deterministic JSON (indent 2, sorted keys, trailing newline); NaN/inf become null, numpy types plain."""
    import numpy as np

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, np.generic):
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    return json.dumps(clean(doc), indent=2, sort_keys=True, allow_nan=False) + "\n"
