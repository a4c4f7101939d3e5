"""Facts about Feishu's card markdown that the renderer maps onto: escaping, code fences,
colours, code languages and link schemes (docs/feishu-platform.md §5.6, §5.3).

Kept in one module so the mapping tables and the one escaping function cannot drift apart, and
so the renderers and the pieces share one fence rule without importing each other.
"""

from __future__ import annotations

import re

# §5.6: characters that collide with Feishu markdown syntax must be written as HTML numeric
# entities (``*`` → ``&#42;``). Only characters that can start syntax anywhere in a line are
# always escaped (``&`` too, so text such as "&copy;" stays literal); ``(`` ``)`` ``!`` are
# harmless once ``[`` is escaped, and ``:`` only forms an emoji as ``:WORD:``.
# Characters other than "\n" that end a line for ``str.splitlines`` (CR, VT, FF, FS, GS, RS,
# NEL, LS, PS): never left raw in rendered text (an entity ``&#13;`` in a reply decodes to a
# CR), or the lines the table scanner and the splitter read would not be the renderer's.
LINE_BREAKING = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_SYNTAX = re.compile(rf"""[\\`*_~\[\]<>|&{LINE_BREAKING}]|:(?=[A-Za-z0-9_]+:)""")
# The same without the colon's branch: a pattern that is one character class is scanned for in
# C, twice as fast as the alternation (most text holds no ":" to look past).
_SYNTAX_CHARACTERS = re.compile(rf"""[\\`*_~\[\]<>|&{LINE_BREAKING}]""")
# Syntax that only counts at the start of a line: list markers, ATX headings, setext
# underlines and ordered-list numbers. The group is the one character to escape.
_LINE_START = re.compile(
    r"^[ \t]*(?:([-+])(?=[ \t]|$)|(#)#{0,5}(?=[ \t]|$)|([-=])[-=]*[ \t]*$|\d{1,9}([.)])(?=[ \t]|$))"
)


def escape(text: str) -> str:
    """The renderer's escaping: syntax characters → ``&#NN;`` (numeric entities)."""
    return (_SYNTAX if ":" in text else _SYNTAX_CHARACTERS).sub(_entity, text)


def _entity(match: re.Match[str]) -> str:
    return f"&#{ord(match.group(0))};"


def literal(text: str) -> str:
    """``text`` as Feishu markdown that shows it as typed, line breaks kept (raw HTML, and
    the details of Errbot's refusals)."""
    return "\n".join(escape_line_start(escape(line)) for line in text.split("\n"))


_LINE_START_CHARACTERS = frozenset("-+#=0123456789")


def escape_line_start(text: str) -> str:
    """Escape what would start a list, heading or setext underline if ``text`` begins a line."""
    if text.lstrip(" \t")[:1] not in _LINE_START_CHARACTERS:
        return text  # the common case, decided without the regular expression
    match = _LINE_START.match(text)
    if not match:
        return text
    group = next(i for i in range(1, 5) if match.group(i) is not None)
    at = match.start(group)
    return f"{text[:at]}&#{ord(text[at])};{text[at + 1 :]}"


# §5.6 code block languages (case-insensitive), plus common aliases plugins write.
CODE_LANGUAGES = frozenset(
    {
        "plain_text",
        "bash",
        "c",
        "cpp",
        "c_sharp",
        "css",
        "diff",
        "go",
        "graphql",
        "html",
        "http",
        "java",
        "javascript",
        "json",
        "kotlin",
        "lua",
        "makefile",
        "markdown",
        "php",
        "python",
        "ruby",
        "rust",
        "scala",
        "shell",
        "sql",
        "swift",
        "toml",
        "typescript",
        "xml",
        "yaml",
        "dockerfile",
        "powershell",
        "perl",
        "r",
        "objective_c",
    }
)
_LANGUAGE_ALIASES = {
    "py": "python",
    "python3": "python",
    "sh": "bash",
    "zsh": "bash",
    "console": "shell",
    "shell-session": "shell",
    "js": "javascript",
    "node": "javascript",
    "ts": "typescript",
    "yml": "yaml",
    "golang": "go",
    "rs": "rust",
    "c++": "cpp",
    "cs": "c_sharp",
    "csharp": "c_sharp",
    "c#": "c_sharp",
    "kt": "kotlin",
    "md": "markdown",
    "rb": "ruby",
    "ps1": "powershell",
    "make": "makefile",
    "objc": "objective_c",
    "text": "plain_text",
    "txt": "plain_text",
}


def code_language(info: str) -> str:
    """The fence info string → a language Feishu highlights, or "" (Feishu shows plain text)."""
    word = info.strip().split(maxsplit=1)[0].lower() if info.strip() else ""
    word = _LANGUAGE_ALIASES.get(word, word)
    return word if word in CODE_LANGUAGES and word != "plain_text" else ""


# §5.6 ``<font color>`` takes Feishu's colour enum (or RGBA); text_tag (our background colour)
# takes its own list. Errbot plugins use ANSI / CSS names (errbot/rendering/ansiext.py).
FONT_COLORS = {
    "red": "red",
    "green": "green",
    "blue": "blue",
    "yellow": "yellow",
    "orange": "orange",
    "purple": "purple",
    "violet": "violet",
    "indigo": "indigo",
    "turquoise": "turquoise",
    "cyan": "turquoise",
    "aqua": "turquoise",
    "teal": "turquoise",
    "magenta": "violet",
    "fuchsia": "violet",
    "pink": "carmine",
    "carmine": "carmine",
    "lime": "lime",
    "wathet": "wathet",
    "grey": "grey",
    "gray": "grey",
    "white": "default",
    "black": "default",
    "default": "default",
}
TAG_COLORS = frozenset(
    {
        "neutral",
        "blue",
        "turquoise",
        "lime",
        "orange",
        "violet",
        "indigo",
        "wathet",
        "green",
        "yellow",
        "red",
        "purple",
        "carmine",
    }
)
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def font_color(name: str) -> str | None:
    """An Errbot/CSS colour → a value for ``<font color=…>``; None when it means nothing."""
    name = name.strip().lower()
    if name in FONT_COLORS:
        return FONT_COLORS[name]
    match = _HEX.fullmatch(name)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        red, green, blue = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        return f"rgba({red},{green},{blue},1)"
    return None


def tag_color(name: str) -> str | None:
    """A background colour → a ``<text_tag>`` colour (Feishu has no text background)."""
    color = FONT_COLORS.get(name.strip().lower())
    if color in TAG_COLORS:
        return color
    return "neutral" if color in ("grey", "default") else None


def safe_url(url: str) -> str | None:
    """§5.6: links must be http(s); anything else is shown as text."""
    url = url.strip()
    if re.match(r"https?://[^\s<>]+$", url, re.IGNORECASE):
        return url.replace("(", "%28").replace(")", "%29")
    return None


def fenced_code(language: str, code: str) -> str:
    """A fence longer than any backtick run in ``code``, so the code cannot close it."""
    runs = re.findall(r"^[ \t]*(`{3,})", code, re.M) if "```" in code else ()  # a log: no scan
    longest = max((len(run) for run in runs), default=0)
    marker = "`" * max(3, longest + 1)
    return f"{marker}{language}\n{code.rstrip(chr(10))}\n{marker}"
