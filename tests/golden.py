"""Golden files: rendered card JSON stored next to the tests and compared exactly.

Regenerate after a deliberate rendering change with ``LARK_REGEN=1 make test`` and review the
diff — the golden files are the reviewable record of what users will see.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def regenerate(path: Path, text: str) -> None:
    """Under ``LARK_REGEN``, write ``text`` (what the test now expects) to ``path`` and skip the
    test: nothing is compared. Otherwise do nothing, so the test goes on to compare."""
    if os.environ.get("LARK_REGEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        pytest.skip(f"regenerated {path.name}: review the diff; nothing was compared")


def check_golden(name: str, value: Any) -> None:
    path = GOLDEN_DIR / f"{name}.json"
    regenerate(path, json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    assert path.exists(), f"no golden file {path.name}: run LARK_REGEN=1 pytest and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == value, f"differs from {path.name}"
