"""Jinja2 card templates: the last step from rendered components to a Feishu card JSON 2.0.

Templates are JSON text with ``{{ expression }}`` in value positions. Every expression's value is
written out *as JSON* (``finalize`` runs :func:`json.dumps`), so a user's text — quotes,
backslashes, newlines, ``{{``, ``</script>`` — can never break the card's JSON, and a template
author never escapes anything. Build strings inside the expression (``{{ "a" ~ b }}``), never
around it (``"a{{ b }}"`` would emit ``"a"b""``). The output is parsed with :func:`json.loads`.

A user overrides a template by putting a file of the same name (``reply.json.j2``…) in the
configured directory. A broken override (syntax error, undefined variable, runtime error, output
that is not a JSON object) is logged as one line naming its file and line, and the default
template of the same name is used instead, so the message still goes out.

Contexts (the contract :mod:`lark_cards.render` fills in; also in each template's header):

``reply`` — every ordinary reply (``send_message``):
    ``elements`` list of component dicts, already rendered; ``summary`` str, the chat-list preview
    (``config.summary``), may be empty; ``part`` / ``parts`` ints, this card's 1-based number and
    the card count when a long reply is split (``parts > 1`` adds a small grey ``part/parts``).
``card`` — Errbot's ``send_card`` (the fields of ``errbot.backends.base.Card``):
    ``title`` str or None (no title → no header); ``summary`` str or None (preview, and the
    header subtitle); ``link`` URL or None (→ ``card_link``: the whole card opens it);
    ``image`` / ``thumbnail`` an ``img_…`` key or None; ``color`` a Feishu header colour (see
    :func:`header_color`); ``fields`` list of ``[key, value]`` pairs, key plain text and value
    Feishu markdown (→ a two-column grid); ``elements`` the rendered body; ``part`` / ``parts``.
``error`` — a failure the user must see:
    ``title`` str (default "Error"); ``message`` plain text; ``elements`` optional components.
"""

from __future__ import annotations

import colorsys
import importlib.resources
import json
import logging
import os
import re
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from lark_cards.render.cardspec import HEADER_TEMPLATES

__all__ = ["DEFAULT_TEMPLATE_DIR", "CardTemplates", "TemplateError", "header_color"]

log = logging.getLogger(__name__)

SUFFIX = ".json.j2"
# The default templates are package data (lark_cards/templates), found through the package
# itself: a clone, a venv, ``pip install --user`` and ``--target`` all have them beside the code.
DEFAULT_TEMPLATE_DIR = Path(str(importlib.resources.files("lark_cards") / "templates"))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # no path separators: names are not paths


class TemplateError(Exception):
    """A card template that cannot be rendered and has no working default; names file and line."""


class _Broken(Exception):
    """A template failed; ``str()`` is the one log line (file, line, reason)."""

    def __init__(self, filename: str, line: int | None, reason: str, *, of: str = "") -> None:
        where = f"line {line}{of}" if line is not None else "unknown line"
        super().__init__(f"card template {filename}, {where}: {' '.join(reason.split())}")


class CardTemplates:
    """The card templates: ``user_dir`` first, then the defaults. Thread-safe, like Jinja.

    Jinja caches compiled templates and re-reads a file only when it changed, so edits to a user
    template apply without a restart.
    """

    def __init__(
        self,
        user_dir: str | os.PathLike[str] | None = None,
        *,
        default_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._default_dir = Path(default_dir) if default_dir is not None else DEFAULT_TEMPLATE_DIR
        self._user_dir = Path(user_dir) if user_dir is not None else None
        self._default = _environment(self._default_dir)
        self._user = _environment(self._user_dir) if self._user_dir else None

    def shipped(self, name: str) -> bool:
        """Whether ``name`` renders with the shipped default (no user file overrides it), so
        the renderer may build that card in Python (``render.builtin``) instead."""
        if self._default_dir != DEFAULT_TEMPLATE_DIR:
            return False
        return self._user_dir is None or not (self._user_dir / (name + SUFFIX)).is_file()

    def render(
        self, name: str, context: Mapping[str, Any], *, report: bool = True
    ) -> dict[str, Any]:
        """The card that template ``name`` makes of ``context``: the user's, else the default.

        ``report=False`` skips the error line for a broken user template (for a render that
        only measures, so one message logs its problem once)."""
        if not _NAME.fullmatch(name):
            raise TemplateError(f"bad card template name {name!r}")
        filename = name + SUFFIX
        if self._user is not None:
            try:
                return _render(self._user, filename, context)
            except jinja2.TemplateNotFound:
                pass
            except _Broken as broken:
                if report:
                    log.error("%s; using the default %s instead", broken, filename)
        try:
            return _render(self._default, filename, context)
        except jinja2.TemplateNotFound:
            raise TemplateError(f"no card template {filename} in {self._default_dir}") from None
        except _Broken as broken:
            raise TemplateError(str(broken)) from broken


def _environment(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not ""
        autoescape=False,  # JSON, not HTML: finalize does the escaping
        finalize=_json_value,
        extensions=["jinja2.ext.do"],  # {% do items.append(...) %} builds lists of components
        keep_trailing_newline=True,
    )
    env.filters["header_color"] = header_color
    return env


def _json_value(value: Any) -> str:
    """Every ``{{ }}`` output as JSON, so user text cannot break the card (module docstring)."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
    return json.dumps(value, ensure_ascii=False, default=str)


def _render(env: jinja2.Environment, filename: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Render and parse one template; any failure is a :class:`_Broken` naming file and line.

    ``TemplateNotFound`` for ``filename`` itself passes through: that is "no such template".
    """
    try:
        template = env.get_template(filename)
    except jinja2.TemplateSyntaxError as exc:
        raise _Broken(exc.filename or filename, exc.lineno, exc.message or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise _Broken(_path(env, filename), None, f"not UTF-8: {exc}") from exc
    except jinja2.TemplateNotFound:  # an OSError too, but "no such template": the caller's
        raise
    except OSError as exc:  # there but unreadable: permissions, a failing disk or share
        raise _Broken(_path(env, filename), None, f"cannot be read: {exc}") from exc
    path = template.filename or filename
    try:
        text = template.render(context)
    except Exception as exc:  # anything a user template does wrong must not lose the message
        reason = f"{type(exc).__name__}: {exc}"
        raise _Broken(path, _template_line(exc, path), reason) from exc
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        # Loops and {# #} shift lines, so the output's line is reported, with its start.
        excerpt = text.splitlines()[exc.lineno - 1][:60] if text.strip() else ""
        reason = f"not JSON: {exc.msg} at column {exc.colno} of {excerpt!r}"
        raise _Broken(path, exc.lineno, reason, of=" of its output") from exc
    if not isinstance(card, dict):
        reason = f"the output is a JSON {type(card).__name__}, not an object"
        raise _Broken(path, 1, reason, of=" of its output")
    return card


def _path(env: jinja2.Environment, filename: str) -> str:
    loader = env.loader
    if isinstance(loader, jinja2.FileSystemLoader):
        return os.path.join(loader.searchpath[0], filename)
    return filename


def _template_line(exc: BaseException, path: str) -> int | None:
    """The template line that failed: Jinja rewrites tracebacks to point into the template."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == path:
            line = frame.lineno
    return line


# --- Errbot card colours → Feishu header templates (feishu-platform.md §5.3) -------------------

# Colour names Errbot plugins pass as ``Card.color`` (CSS-style names) that are not Feishu's own.
_NAMED = {
    "white": "default",
    "black": "grey",
    "gray": "grey",
    "cyan": "turquoise",
    "teal": "turquoise",
    "aqua": "turquoise",
    "lightblue": "wathet",
    "navy": "indigo",
    "magenta": "violet",  # as #ff00ff; Feishu's carmine is pinker (#F01D94)
    "fuchsia": "violet",
    "pink": "carmine",
    "brown": "orange",
    "lime": "green",
}
# Approximate hues of Feishu's header colours, to pick the nearest for a hex colour.
_RGB = {
    "blue": (0x33, 0x70, 0xFF),
    "wathet": (0x14, 0xC0, 0xFF),
    "turquoise": (0x14, 0xC9, 0xC9),
    "green": (0x34, 0xC7, 0x24),
    "yellow": (0xFF, 0xC6, 0x0A),
    "orange": (0xFF, 0x88, 0x00),
    "red": (0xF5, 0x4A, 0x45),
    "carmine": (0xF0, 0x1D, 0x94),
    "violet": (0xD1, 0x36, 0xD1),
    "purple": (0x7F, 0x3B, 0xF5),
    "indigo": (0x49, 0x54, 0xE6),
}
_HEX = re.compile(r"#?([0-9a-f]{3}|[0-9a-f]{6})")


def header_color(color: str | None) -> str:
    """The Feishu header ``template`` colour for an Errbot card colour; ``"default"`` if unknown.

    Feishu only takes its 13 names (§5.3), while Errbot plugins pass any name or ``#RRGGBB``;
    an unknown colour must not make Feishu reject the card. Hex picks the nearest: greyish
    colours become ``grey`` (near-white ``default``), others the closest hue.
    """
    name = (color or "").strip().lower().replace(" ", "")
    if name in HEADER_TEMPLATES:
        return name
    if name in _NAMED:
        return _NAMED[name]
    match = _HEX.fullmatch(name)
    if match is None:
        return "default"
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    rgb = tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
    _, lightness, saturation = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    if saturation < 0.25 or lightness < 0.12 or lightness > 0.92:
        return "default" if lightness > 0.92 else "grey"
    return min(_RGB, key=lambda n: _distance(rgb, _RGB[n]))


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Squared "redmean" colour distance: closer to what eyes see than plain RGB distance."""
    mean = (a[0] + b[0]) / 2
    dr, dg, db = (x - y for x, y in zip(a, b, strict=True))
    return (2 + mean / 256) * dr * dr + 4 * dg * dg + (2 + (255 - mean) / 256) * db * db
