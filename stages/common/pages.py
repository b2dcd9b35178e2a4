"""HTML pages from Jinja2 templates kept beside a stage's code (the eval report, alerts.html).

Autoescaping is on for every value; an undefined name is an error, not a blank; ``None``
prints as nothing. Jinja2 is imported here only when a page is rendered: the stages that
write no page do not install it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

__all__ = ["environment"]


@functools.cache
def environment(templates: Path) -> jinja2.Environment:
    """The template environment of one stage's ``templates`` folder."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,
    )
