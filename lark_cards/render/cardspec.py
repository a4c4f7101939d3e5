"""What Feishu's card JSON 2.0 allows.

Data only: the properties each object and component tag may carry, the allowed values of the
enumerated ones and the structural limits. :mod:`lark_cards.render.validate` does the checking;
the codes Feishu answers with when a card breaks these rules are in :mod:`lark_cards.api.errors`.

Each list cites its section of docs/feishu-platform.md. **UNCONFIRMED** marks a list or a
limit the reference has no official text for; limits follow the strictest reading the
reference allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

# --- the card skeleton and text objects (§5.3) --------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


TOP_KEYS = _words("schema config card_link header body")
CONFIG_KEYS = _words(
    "update_multi enable_forward width_mode summary streaming_mode enable_forward_interaction"
    " locales style"
)
SUMMARY_KEYS = _words("content i18n_content")
CARD_LINK_KEYS = _words("url pc_url ios_url android_url")
HEADER_KEYS = _words("title subtitle text_tag_list template icon padding")
WIDTH_MODES = _words("default compact fill")
HEADER_TEMPLATES = _words(
    "blue wathet turquoise green yellow orange red carmine violet purple indigo grey default"
)
# The §5.3 skeleton; Feishu documents more layout keys for body, the reference does not
# (UNCONFIRMED), so they are rejected here until confirmed.
BODY_KEYS = _words("direction padding vertical_spacing elements")
TEXT_KEYS = _words("tag content i18n_content text_size text_color text_align lines")
TEXT_TAGS = ("plain_text", "lark_md")  # a text object's tag (a tuple: error messages list it)
TEXT_TAG_KEYS = _words("tag text color element_id")
MAX_HEADER_TAGS = 3  # ≤ 3 header text tags (§5.3)
ELEMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,19}")  # §5.3: ≤ 20 chars, starts with a letter

# --- components (§5.5) --------------------------------------------------------------------------

# The 2.0 component tags (§5.5): no ``note`` and no ``action`` module in 2.0.
COMPONENT_TAGS = _words(
    "column_set form interactive_container collapsible_panel div markdown img img_combination"
    " person person_list chart table hr input button overflow select_static"
    " multi_select_static select_person multi_select_person date_picker picker_time"
    " picker_datetime select_img checker"
)
_LAYOUT = (
    " direction padding vertical_spacing horizontal_spacing vertical_align horizontal_align"
    " background_style"
)
# Properties per tag, beside tag/element_id/margin. Tags missing here (person, chart, input,
# select_* …) have their properties unchecked: the reference does not list them. markdown, hr,
# img, table and button follow §5.3 (element_id, i18n_content) and §5.5; the container and div
# sets beyond what §5.5 shows are Feishu's component docs as recalled, UNCONFIRMED.
PROPERTIES: Mapping[str, frozenset[str]] = {
    tag: _words("tag element_id margin " + words)
    for tag, words in {
        "markdown": "content i18n_content text_align text_size icon",
        "hr": "",
        "img": "img_key alt title scale_type size preview corner_radius mode transparent",
        "table": "page_size row_height row_max_height header_style columns rows"
        " freeze_first_column",
        "button": "text type size width behaviors confirm disabled hover_tips icon name"
        " form_action_type",
        "div": "text fields icon width",
        "column_set": "flex_mode columns action" + _LAYOUT,
        "column": "width weight elements action" + _LAYOUT,
        "collapsible_panel": "expanded header background_color border elements" + _LAYOUT,
        "interactive_container": "width height has_border border_color corner_radius behaviors"
        " disabled disabled_tips confirm hover_tips elements" + _LAYOUT,
        "form": "name elements" + _LAYOUT,
    }.items()
}
PANEL_HEADER_KEYS = _words("title icon icon_position icon_expanded_angle")
BEHAVIOR_KEYS = {
    "callback": _words("type value"),
    "open_url": _words("type default_url pc_url ios_url android_url"),
}
TABLE_COLUMN_KEYS = _words(
    "name display_name width data_type format date_format vertical_align horizontal_align"
)
TABLE_DATA_TYPES = _words("text lark_md options number persons date markdown")
TABLE_HEADER_STYLE_KEYS = _words("text_align text_size background_style text_color bold lines")
ROW_HEIGHTS = _words("low middle high auto")

# --- limits (§5.4) ------------------------------------------------------------------------------


class CardLimits(NamedTuple):
    """Per-card budgets (§5.4); the renderer may configure tighter ones."""

    max_bytes: int = 30 * 1024
    max_components: int = 200
    max_tables: int = 5


MAX_NESTING = 5  # containers nest ≤ 5 levels (§5.4)
MAX_TABLES_PER_MARKDOWN = 4  # pipe tables in one markdown element (§5.4 [S19])
