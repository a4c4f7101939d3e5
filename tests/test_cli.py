"""``python -m lark_cards render [FILE|-]``: JSON on stdout, exit 0; bad input → exit 2 and one
line on stderr, never a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from user_templates import REPO, run_cli

from lark_cards.__main__ import build_parser, main
from lark_cards.render import render_markdown

MARKDOWN = "# Deploy\n\n- **prod**: ok\n- 飞书 `staging`\n\n```python\nprint('hi')\n```\n"


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``main(argv)`` exits 2 with nothing on stdout and one line on stderr, never a
    traceback: that line."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_render_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reply.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    assert main(["render", str(path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == render_markdown(MARKDOWN)
    assert err == ""


def test_render_stdin_with_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, MARKDOWN.encode())
    assert main(["render", "-"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert isinstance(cards, list)
    assert cards == render_markdown(MARKDOWN)
    assert all(card["schema"] == "2.0" for card in cards)


def test_render_reads_stdin_by_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, b"\xef\xbb\xbfhello")  # a BOM is dropped
    assert main(["render"]) == 0
    assert json.loads(capsys.readouterr().out) == render_markdown("hello")


def test_render_text_stdin_without_buffer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("plain *text*"))
    assert main(["render"]) == 0
    assert json.loads(capsys.readouterr().out) == render_markdown("plain *text*")


def test_empty_input_is_fine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, b"")
    assert main(["render", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == render_markdown("")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.md"
    line = refused(["render", str(missing)], capsys)
    assert str(missing) in line
    assert "No such file" in line


def test_a_directory_is_not_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert str(tmp_path) in refused(["render", str(tmp_path)], capsys)


def test_file_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes("café".encode("latin-1"))
    line = refused(["render", str(path)], capsys)
    assert str(path) in line
    assert "not UTF-8" in line
    assert "0xe9" in line


def test_stdin_not_utf8(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, b"ok\n\xff\xfe")
    assert "standard input is not UTF-8" in refused(["render", "-"], capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["render", "a.md", "b.md"], "unrecognized arguments: b.md"),
        (["render", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_command_lines(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in refused(argv, capsys)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "render" in capsys.readouterr().out
    assert main(["render", "--help"]) == 0
    assert "FILE" in capsys.readouterr().out


def test_commands_are_subparsers() -> None:
    args = build_parser().parse_args(["render", "x.md"])
    assert (args.command, args.file) == ("render", "x.md")
    assert callable(args.run)


def test_python_dash_m_with_stdin() -> None:
    """The real thing: a subprocess, stdin piped, UTF-8 JSON on stdout."""
    result = run_cli("render", "-", stdin=MARKDOWN)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == render_markdown(MARKDOWN)


def start_render_from_stdin() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lark_cards", "render", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )


def finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Wait for ``process``; its exit status and stderr (a traceback is a few KB: no deadlock)."""
    status = process.wait(timeout=60)
    assert process.stderr is not None
    with process.stderr:
        return status, process.stderr.read().decode()


def test_stdout_closed_before_any_output() -> None:
    """Nobody reads stdout: exit 141 (as if killed by SIGPIPE), nothing on stderr."""
    process = start_render_from_stdin()
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdout.close()  # before the input is complete, so before render writes anything
    with process.stdin:
        process.stdin.write(MARKDOWN.encode())
    status, err = finish(process)
    assert "Traceback" not in err
    assert (status, err) == (141, "")


def test_reader_stops_after_one_line() -> None:
    """``python -m lark_cards render - | head -1`` with far more output than a pipe buffers."""
    markdown = "\n\n".join(f"paragraph {i}: " + "word " * 30 for i in range(2000))
    process = start_render_from_stdin()
    assert process.stdin is not None
    assert process.stdout is not None
    with process.stdin:
        process.stdin.write(markdown.encode())
    with process.stdout:
        assert process.stdout.readline() == b"[\n"
    status, err = finish(process)
    assert "Traceback" not in err
    assert (status, err) == (141, "")
