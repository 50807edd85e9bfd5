"""The one Jinja2 environment that renders all TextGym prose.

Every env keeps its wording in ``textgym/envs/<name>/templates/*.j2``; shared macros and the
trajectory layout live in ``textgym/templates/``. Rendering is strict: a template that names a
variable the translator did not provide raises instead of printing an empty string.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["render", "fixed", "magnitude", "direction", "FlatGlobalsEnvironment"]

PACKAGE_DIR = Path(__file__).resolve().parent


def fixed(value: float, digits: int = 3) -> str:
    """Format ``value`` with ``digits`` decimals, never printing ``-0.000``."""
    text = f"{float(value):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def magnitude(value: float, digits: int = 3) -> str:
    """Format ``|value|`` with ``digits`` decimals; pair it with :func:`direction` for the sign."""
    return fixed(abs(float(value)), digits)


def direction(value: float, positive: str, negative: str, zero: str | None = None, digits: int = 3) -> str:
    """Name the sign of ``value`` in words, e.g. ``direction(v, "right", "left")``.

    A value that prints as zero at ``digits`` decimals gets ``zero`` (default: ``positive``), so
    the text never claims a direction it cannot show.
    """
    if float(fixed(abs(float(value)), digits)) == 0:
        return positive if zero is None else zero
    return positive if value > 0 else negative


class FlatGlobalsEnvironment(jinja2.Environment):
    """A Jinja2 environment whose templates' globals are a plain dict.

    Jinja2 gives each template a ``ChainMap`` of its own and the environment's globals, and copies it into every
    render's context with Python-level iteration: a quarter of a short template's render time. Ours never change
    after the environment is set up, so one merged dict per template (template globals over environment globals,
    as the ``ChainMap`` reads them) renders the same texts. The agents' prompt templates use it too: set every
    global before the first render.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """The template's globals over the environment's, merged once into one dict."""
        return {**self.globals, **(d or {})}


@functools.cache
def _environment() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader([str(PACKAGE_DIR / "envs"), str(PACKAGE_DIR / "templates")])
    env = FlatGlobalsEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
        auto_reload=False,  # package files: checking their mtimes on every render cost a stat per render
    )
    env.filters.update(fixed=fixed, magnitude=magnitude, direction=direction)
    return env


@functools.cache
def _template(name: str) -> jinja2.Template:
    # Kept by name: the templates are package files that never reload, and Jinja2's own lookup (a weakref of the
    # loader, an LRU cache's lock and reordering) was a tenth of rendering a short observation.
    return _environment().get_template(name)


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a path such as ``"cartpole/templates/game.j2"``) and strip outer whitespace."""
    return _template(template).render(**context).strip()
