"""The documents show their figures: every image docs/results.md embeds is a committed
file, and each results folder with a success curve is shown there."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_every_image_of_the_docs_is_a_committed_file() -> None:
    missing = [
        f"{page.name}: {target}"
        for page in sorted(DOCS.glob("*.md"))
        for target in IMAGE.findall(page.read_text())
        if not target.startswith(("http://", "https://")) and not (DOCS / target).is_file()
    ]
    assert not missing


def test_results_embeds_the_success_curve_of_each_reported_setting() -> None:
    shown = set(IMAGE.findall((DOCS / "results.md").read_text()))
    for folder in ("playground", "babyai-words", "ablations", "tokenizer"):
        assert f"results/{folder}/success.png" in shown, folder
