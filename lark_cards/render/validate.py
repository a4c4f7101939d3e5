"""Check that a card is one Feishu accepts (card JSON 2.0), and say why not with Feishu's codes.

Card JSON 2.0 is strict: one unknown property, a non-``img_`` image key or one table too many and
Feishu rejects the *whole* message, so the user sees nothing (docs/feishu-platform.md
§5.3-§5.5). The renderer's tests run every card through :func:`validate_card`, and the local
sandbox answers with the same codes Feishu would, so the fallbacks can be tested offline.

What 2.0 allows (property lists, values, limits) is data in :mod:`.cardspec`; the codes are named
in :mod:`lark_cards.api.errors`. Components whose properties the reference does not list
(person, chart, input…) are checked for their tag only, so "valid" here is necessary, not
sufficient.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from lark_cards.api.errors import (
    CARD_SCHEMA_MISMATCH,
    INVALID_IMAGE_KEY,
    INVALID_PARAM,
    MESSAGE_TOO_LARGE,
    TOO_MANY_COMPONENTS,
    TOO_MANY_TABLES,
    UNKNOWN_TABLE_ROW_KEY,
)
from lark_cards.render.cardspec import (
    BEHAVIOR_KEYS,
    BODY_KEYS,
    CARD_LINK_KEYS,
    COMPONENT_TAGS,
    CONFIG_KEYS,
    ELEMENT_ID,
    HEADER_KEYS,
    HEADER_TEMPLATES,
    MAX_HEADER_TAGS,
    MAX_NESTING,
    MAX_TABLES_PER_MARKDOWN,
    PANEL_HEADER_KEYS,
    PROPERTIES,
    ROW_HEIGHTS,
    SUMMARY_KEYS,
    TABLE_COLUMN_KEYS,
    TABLE_DATA_TYPES,
    TABLE_HEADER_STYLE_KEYS,
    TEXT_KEYS,
    TEXT_TAG_KEYS,
    TEXT_TAGS,
    TOP_KEYS,
    WIDTH_MODES,
    CardLimits,
)
from lark_cards.render.scan import markdown_image_keys, markdown_tables


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason Feishu would reject the card."""

    code: int  #: Feishu's error code for this rejection
    path: str  #: where, e.g. ``body.elements[3].rows[0]`` ("" = the card itself)
    message: str


def card_size(card: Mapping[str, Any]) -> int:
    """The card's size in UTF-8 bytes, compact JSON: the measure of Feishu's 30 KB limit (§5.4).

    Characters would undercount CJK text threefold. The request body also carries the
    double-encoded ``content`` and an envelope, so budgets keep a margin below the limit.
    """
    text = json.dumps(card, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def _tagged(value: Any) -> Iterator[dict[str, Any]]:
    """Every object with a ``tag`` anywhere inside ``value`` (a loop: no recursion limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "tag" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def count_components(card: Mapping[str, Any]) -> int:
    """Components counted toward the 200 limit (§5.4): every tagged object, text objects too.

    §5.4 says "each ``plain_text`` element counts"; counting the header's too is the strictest
    reading (which objects Feishu counts exactly is UNCONFIRMED).
    """
    return sum(1 for _ in _tagged(dict(card)))


def count_tables(card: Mapping[str, Any]) -> int:
    """Tables counted toward the 5 limit: ``table`` components plus markdown pipe tables (§5.4)."""
    count = 0
    for obj in _tagged(dict(card)):
        if obj["tag"] == "table":
            count += 1
        elif obj["tag"] == "markdown" and isinstance(obj.get("content"), str):
            count += markdown_tables(obj["content"])
    return count


def validate_card(
    card: Any,
    limits: CardLimits = CardLimits(),  # noqa: B008 - an immutable NamedTuple
    *,
    known_image_keys: Collection[str] | None = None,
) -> list[Problem]:
    """Every reason Feishu would reject ``card``; ``[]`` means it is valid.

    ``known_image_keys``: when given (the sandbox's uploads), an ``img_`` key must also be one of
    them, as Feishu only accepts keys that ``im/v1/images`` returned (§4.5).
    """
    if not isinstance(card, dict):
        return [Problem(INVALID_PARAM, "", "a card must be a JSON object")]
    try:
        size = card_size(card)
    except (TypeError, ValueError, RecursionError) as exc:
        return [Problem(INVALID_PARAM, "", f"not JSON: {exc}")]
    checker = _Checker(known_image_keys)
    checker.card(card)
    problems = checker.problems
    if size > limits.max_bytes:
        problems.append(
            Problem(MESSAGE_TOO_LARGE, "", f"{size} bytes of JSON, over {limits.max_bytes}")
        )
    if (components := count_components(card)) > limits.max_components:
        message = f"{components} components, over {limits.max_components}"
        problems.append(Problem(TOO_MANY_COMPONENTS, "", message))
    if (tables := count_tables(card)) > limits.max_tables:
        problems.append(Problem(TOO_MANY_TABLES, "", f"{tables} tables, over {limits.max_tables}"))
    return problems


class _Checker:
    """Walks one card, collecting :class:`Problem` s (structure, ids, image keys, tables)."""

    def __init__(self, known_image_keys: Collection[str] | None) -> None:
        self.known_image_keys = known_image_keys
        self.problems: list[Problem] = []
        self.element_ids: set[str] = set()

    def expect(self, ok: object, path: str, message: str, code: int = INVALID_PARAM) -> bool:
        if not ok:
            self.fail(path, message, code)
        return bool(ok)

    def fail(self, path: str, message: str, code: int = INVALID_PARAM) -> None:
        self.problems.append(Problem(code, path, message))

    def obj(self, value: object, path: str, allowed: Collection[str]) -> TypeGuard[dict[str, Any]]:
        """Check ``value`` is an object with only ``allowed`` keys (2.0 is strict, §5.3)."""
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return False
        for key in value:
            self.expect(key in allowed, _join(path, key), f"unknown property {key!r}")
        return True

    def text(self, value: Any, path: str, tags: Collection[str] = TEXT_TAGS) -> None:
        if self.obj(value, path, TEXT_KEYS):
            self.expect(_one_of(value.get("tag"), tags), _join(path, "tag"), f"one of {list(tags)}")
            content = value.get("content", "")
            self.expect(isinstance(content, str), _join(path, "content"), "must be a string")

    def card(self, card: dict[str, Any]) -> None:
        ok = card.get("schema") == "2.0"
        self.expect(ok, "schema", 'must be "2.0" (card JSON 2.0)', CARD_SCHEMA_MISMATCH)
        self.obj(card, "", TOP_KEYS)
        if "config" in card:
            self.config(card["config"])
        if "card_link" in card:
            self.obj(card["card_link"], "card_link", CARD_LINK_KEYS)
        if "header" in card:
            self.header(card["header"])
        if self.obj(body := card.get("body"), "body", BODY_KEYS):
            self.elements(body.get("elements"), "body.elements", depth=0, inside=())

    def config(self, config: Any) -> None:
        if self.obj(config, "config", CONFIG_KEYS):
            ok = config.get("update_multi", True) is True
            self.expect(ok, "config.update_multi", "2.0 cards only support true (§5.3)")
            ok = _one_of(config.get("width_mode", "default"), WIDTH_MODES)
            self.expect(ok, "config.width_mode", "default, compact or fill")
            if "summary" in config and self.obj(config["summary"], "config.summary", SUMMARY_KEYS):
                content = config["summary"].get("content", "")
                self.expect(isinstance(content, str), "config.summary.content", "a string")

    def header(self, header: Any) -> None:
        if not self.obj(header, "header", HEADER_KEYS):
            return
        # A header without a title is UNCONFIRMED; the templates leave the header out instead.
        self.text(header.get("title"), "header.title")
        if "subtitle" in header:
            self.text(header["subtitle"], "header.subtitle")
        ok = _one_of(header.get("template", "default"), HEADER_TEMPLATES)
        self.expect(ok, "header.template", "not a header colour (§5.3)")
        tags = header.get("text_tag_list", [])
        ok = isinstance(tags, list) and len(tags) <= MAX_HEADER_TAGS
        if self.expect(ok, "header.text_tag_list", f"at most {MAX_HEADER_TAGS} tags (§5.3)"):
            for i, tag in enumerate(tags):
                if self.obj(tag, path := f"header.text_tag_list[{i}]", TEXT_TAG_KEYS):
                    self.expect(tag.get("tag") == "text_tag", _join(path, "tag"), "text_tag")
                    self.text(tag.get("text"), _join(path, "text"), ("plain_text",))
                    self.element_id(tag, path)

    def elements(self, elements: Any, path: str, depth: int, inside: tuple[str, ...]) -> None:
        if self.expect(isinstance(elements, list), path, "must be a list of components"):
            for i, element in enumerate(elements):
                self.component(element, f"{path}[{i}]", depth, inside)

    def component(self, element: Any, path: str, depth: int, inside: tuple[str, ...]) -> None:
        tag = element.get("tag") if isinstance(element, dict) else None
        if not _one_of(tag, COMPONENT_TAGS):  # 2.0 has no note and no action module (§5.5)
            self.fail(path, f"unknown component {tag!r}")
            return
        if tag in PROPERTIES:
            self.obj(element, path, PROPERTIES[tag])
        self.element_id(element, path)
        ok = tag != "table" or not inside
        self.expect(ok, path, "a table may only sit at the body root (§5.4)")
        ok = tag != "form" or "collapsible_panel" not in inside
        self.expect(ok, path, "no form inside a collapsible_panel (§5.5)")
        if tag in _CHECKS:
            _CHECKS[tag](self, element, path)
        if tag in _CONTAINERS:
            ok = depth < MAX_NESTING
            if self.expect(ok, path, f"containers nest at most {MAX_NESTING} levels (§5.4)"):
                _CONTAINERS[tag](self, element, path, depth + 1, (*inside, tag))

    def element_id(self, element: dict[str, Any], path: str) -> None:
        """Unique per card, ``[A-Za-z][A-Za-z0-9_]*``, ≤ 20 characters (§5.3)."""
        if "element_id" in element:
            value, path = element["element_id"], _join(path, "element_id")
            ok = isinstance(value, str) and ELEMENT_ID.fullmatch(value)
            if self.expect(ok, path, "letters, digits and _, a letter first, ≤ 20"):
                self.expect(value not in self.element_ids, path, f"duplicate id {value!r}")
                self.element_ids.add(value)

    def image_key(self, key: Any, path: str) -> None:
        """Only keys uploaded through im/v1/images work, never URLs (§4.5)."""
        ok = isinstance(key, str) and key.startswith("img_")
        if self.expect(ok, path, f"{key!r} is not an img_ key", INVALID_IMAGE_KEY):
            ok = self.known_image_keys is None or key in self.known_image_keys
            self.expect(ok, path, f"{key!r} was never uploaded", INVALID_IMAGE_KEY)

    def markdown(self, element: dict[str, Any], path: str) -> None:
        content, path = element.get("content", ""), _join(path, "content")
        if self.expect(isinstance(content, str), path, "must be a string"):
            for key in markdown_image_keys(content):
                self.image_key(key, path)
            ok = markdown_tables(content) <= MAX_TABLES_PER_MARKDOWN
            message = f"at most {MAX_TABLES_PER_MARKDOWN} tables per markdown element (§5.4)"
            self.expect(ok, path, message, TOO_MANY_TABLES)

    def img(self, element: dict[str, Any], path: str) -> None:
        self.image_key(element.get("img_key"), _join(path, "img_key"))
        for key in ("alt", "title"):
            if key in element:
                self.text(element[key], _join(path, key))

    def table(self, element: dict[str, Any], path: str) -> None:
        """§5.5 table shape; rows may only use declared column names (200915)."""
        size = element.get("page_size", 5)
        ok = type(size) is int and 1 <= size <= 10
        self.expect(ok, _join(path, "page_size"), "an integer from 1 to 10")
        height = element.get("row_height", "low")
        px = re.fullmatch(r"(\d+)px", height) if isinstance(height, str) else None
        ok = _one_of(height, ROW_HEIGHTS) or (px is not None and 32 <= int(px.group(1)) <= 124)
        self.expect(ok, _join(path, "row_height"), "low, middle, high, auto or 32px-124px")
        if "header_style" in element:
            self.obj(element["header_style"], _join(path, "header_style"), TABLE_HEADER_STYLE_KEYS)
        names = self.table_columns(element.get("columns"), _join(path, "columns"))
        rows = element.get("rows", [])
        if self.expect(isinstance(rows, list), _join(path, "rows"), "must be a list"):
            for i, row in enumerate(rows):
                where = f"{path}.rows[{i}]"
                if self.expect(isinstance(row, dict), where, "must be an object"):
                    for key in sorted(row.keys() - names):
                        message = f"row key {key!r} is not a column name"
                        self.fail(where, message, UNKNOWN_TABLE_ROW_KEY)

    def table_columns(self, columns: Any, path: str) -> set[str]:
        names: set[str] = set()
        if not self.expect(isinstance(columns, list) and columns, path, "a list of columns"):
            return names
        for i, column in enumerate(columns):
            if self.obj(column, where := f"{path}[{i}]", TABLE_COLUMN_KEYS):
                name = column.get("name")
                if isinstance(name, str) and name and name not in names:
                    names.add(name)
                else:
                    self.fail(_join(where, "name"), "a unique, non-empty string")
                ok = _one_of(column.get("data_type", "text"), TABLE_DATA_TYPES)
                self.expect(ok, _join(where, "data_type"), f"one of {sorted(TABLE_DATA_TYPES)}")
        return names

    def div(self, element: dict[str, Any], path: str) -> None:
        if "text" in element:
            self.text(element["text"], _join(path, "text"))

    def button(self, element: dict[str, Any], path: str) -> None:
        self.text(element.get("text"), _join(path, "text"))
        self.behaviors(element, path)

    def behaviors(self, element: dict[str, Any], path: str) -> None:
        """``behaviors``: a list of callback / open_url objects (§5.5 button)."""
        behaviors = element.get("behaviors", [])
        if self.expect(isinstance(behaviors, list), _join(path, "behaviors"), "a list"):
            for i, behavior in enumerate(behaviors):
                kind = behavior.get("type") if isinstance(behavior, dict) else None
                where = f"{path}.behaviors[{i}]"
                if _one_of(kind, BEHAVIOR_KEYS):
                    self.obj(behavior, where, BEHAVIOR_KEYS[kind])
                else:
                    self.fail(where, "type callback or open_url")

    def collapsible_panel(self, element: dict[str, Any], path: str) -> None:
        header = element.get("header")
        if header is not None and self.obj(header, _join(path, "header"), PANEL_HEADER_KEYS):
            self.text(header.get("title"), _join(path, "header.title"), ("plain_text", "markdown"))

    def children(self, element: dict[str, Any], path: str, depth: int, inside: tuple) -> None:
        self.elements(element.get("elements", []), _join(path, "elements"), depth, inside)

    def columns(self, element: dict[str, Any], path: str, depth: int, inside: tuple) -> None:
        columns = element.get("columns", [])
        if self.expect(isinstance(columns, list), _join(path, "columns"), "must be a list"):
            for i, column in enumerate(columns):
                if self.obj(column, where := f"{path}.columns[{i}]", PROPERTIES["column"]):
                    self.expect(column.get("tag") == "column", _join(where, "tag"), "column")
                    self.element_id(column, where)
                    self.children(column, where, depth, inside)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _one_of(value: object, names: Collection[str]) -> TypeGuard[str]:
    """``value in names`` that is False, not TypeError, for a list or an object (hostile input)."""
    return isinstance(value, str) and value in names


_CHECKS: Mapping[str, Callable[[_Checker, dict[str, Any], str], None]] = {
    "markdown": _Checker.markdown,
    "img": _Checker.img,
    "table": _Checker.table,
    "button": _Checker.button,
    "div": _Checker.div,
    "interactive_container": _Checker.behaviors,
    "collapsible_panel": _Checker.collapsible_panel,
}
# Containers and how to reach their children (§5.5). A column_set and its columns count as one
# nesting level: how Feishu counts column levels is UNCONFIRMED.
_CONTAINERS = {
    "column_set": _Checker.columns,
    "form": _Checker.children,
    "interactive_container": _Checker.children,
    "collapsible_panel": _Checker.children,
}
