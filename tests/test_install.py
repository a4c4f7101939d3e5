"""An installed lark-cards finds its card templates wherever pip put it (issue 12, item 1).

The templates were data files under ``<prefix>/share``, looked up only in ``sys.prefix``: with
``pip install --user`` (or ``--prefix``, ``--target``) the bot never answered and ``python -m
lark_cards render`` crashed. They are package data now. This installs a copy of the project,
offline (``--no-index --no-build-isolation``: the venv's setuptools builds it), and renders
with the installed package, outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = shutil.ignore_patterns(
    ".*", "*.egg-info", "build", "dist", "demo", "__pycache__", "node_modules", "tests"
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project to build from (a build in place would leave build/ behind)."""
    copy = tmp_path_factory.mktemp("source") / "lark-cards"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    return copy


def install(source: Path, option: str, into: Path) -> Path:
    """``pip install OPTION INTO`` of ``source``; the folder the package landed in."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    command += ["--no-build-isolation", option, str(into), str(source)]
    subprocess.run(command, check=True, timeout=300, capture_output=True)
    if option == "--target":
        return into
    [site] = into.glob("lib/python3*/site-packages")
    return site


@pytest.mark.parametrize("option", ["--target", "--prefix"])
def test_an_install_anywhere_renders_with_its_templates(
    source: Path, tmp_path: Path, option: str
) -> None:
    site = install(source, option, tmp_path / "installed")
    assert (site / "lark_cards" / "templates" / "reply.json.j2").is_file()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import lark_cards; print(lark_cards.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)  # not the checkout
    result = subprocess.run(
        [sys.executable, "-m", "lark_cards", "render", "-"],
        cwd=tmp_path,
        env=env,
        input="# Deploy\n\n**done**",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [card] = json.loads(result.stdout)
    assert card["schema"] == "2.0"
    assert card["body"]["elements"][-1]["content"].endswith("**done**")
