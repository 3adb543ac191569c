"""Names made safe for the terminal and for JSON (pipeline.results.text)."""

from __future__ import annotations

import json
import os

import pytest

from pipeline.results.text import json_text, terminal_text


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("plain.png", "plain.png"),
        ("café/日本.png", "café/日本.png"),
        ("a\x1b[31mred.png", "a\\x1b[31mred.png"),
        ("line\nbreak\r.png", "line\\x0abreak\\x0d.png"),
        ("del\x7f.png", "del\\x7f.png"),
        ("c1\x9b.png", "c1\\x9b.png"),
        ("rlo\u202egnp.exe", "rlo\\u202egnp.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("sep\u2028para\u2029", "sep\\u2028para\\u2029"),
        ("tag\U000e0041", "tag\\U000e0041"),
        (os.fsdecode(b"latin\xe9.png"), "latin\\xe9.png"),
    ],
)
def test_terminal_text_shows_hidden_characters_as_escapes(name: str, shown: str) -> None:
    assert terminal_text(name) == shown
    assert terminal_text(name).isprintable()


def test_json_text_keeps_names_exact_unless_they_are_not_utf8() -> None:
    value = {
        "ok": ["a\x1b.png", "日本.png"],
        os.fsdecode(b"k\xff"): (1, None, os.fsdecode(b"v\xfe")),
    }
    safe = json_text(value)
    assert safe == {"ok": ["a\x1b.png", "日本.png"], "k\\xff": [1, None, "v\\xfe"]}
    text = json.dumps(safe, ensure_ascii=True)
    text.encode("utf-8")  # a lone surrogate would raise here
    assert json.loads(text) == safe
    assert "\x1b" not in text
