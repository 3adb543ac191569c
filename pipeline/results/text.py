"""Text from file names made safe to print: no raw control or escape characters.

A file may be called ``"\\x1b[2Jevil.png"`` or carry a right-to-left override; printed
as it is, its name would clear the screen or reorder the line around it. Everything
the command line prints that came from a file name goes through
:func:`terminal_text`, which shows such characters as visible escapes
(``\\x1b``, ``\\u202e``) and leaves every other character, accented letters and
other scripts included, as it is. :func:`json_text` does the one thing JSON's own
escaping cannot: a name that is not valid UTF-8 (Python holds its bytes as lone
surrogates) becomes the same visible escape, so ``--json`` output is valid
UTF-8 JSON for any name. :func:`printable_text` is :func:`terminal_text` cut to a
length for figures and pages; :func:`text_values` turns an array of names (object,
``<U`` or NumPy ``StringDType``) into plain ``str``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["json_text", "printable_text", "terminal_text", "text_values"]

# Control (Cc), format (Cf: bidi overrides, zero-width), surrogates (Cs: undecodable
# bytes of a file name) and the line/paragraph separators (Zl, Zp).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# os.fsdecode keeps an undecodable byte b as the lone surrogate U+DC00 + b.
_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)


def _escape(char: str) -> str:
    code = ord(char)
    if code in _SURROGATE_ESCAPES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_text(text: object) -> str:
    """``str(text)`` with control, format and undecodable characters as visible escapes.

    Examples
    --------
    >>> terminal_text("a\\x1b[31mb\\n.png")
    'a\\\\x1b[31mb\\\\x0a.png'
    >>> terminal_text("café.png")
    'café.png'
    """
    value = str(text)
    if value.isprintable():
        return value
    return "".join(
        _escape(char) if unicodedata.category(char) in _HIDDEN_CATEGORIES else char
        for char in value
    )


def printable_text(text: object, limit: int | None = None) -> str:
    """``text`` as a person should read it: every character shows, none acts.

    The escapes are :func:`terminal_text`'s: bytes that were not UTF-8 as ``\\xNN``,
    control, format (bidi) and separator characters as ``\\xNN``/``\\uNNNN``;
    everything else, ``$`` and ``#`` included, is kept. With ``limit``, a longer
    result keeps its start and its end around an ellipsis (the end of a path tells
    pairs apart).

    Examples
    --------
    >>> len(printable_text("a/long/path/to/the/name.png", 12))
    12
    """
    shown = terminal_text(text)
    if limit is not None and len(shown) > limit:
        head = (limit - 1) // 2
        tail = limit - 1 - head
        shown = shown[:head] + "\u2026" + shown[len(shown) - tail :]
    return shown


def text_values(values: Any) -> list[str]:
    """Plain ``str`` items of an array of object, ``<U`` or NumPy ``StringDType`` strings."""
    import numpy as np  # here, not at the top: the command line's --help imports this module

    return [str(v) for v in np.asarray(values).ravel()]


def _surrogates_escaped(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_escape(c) if unicodedata.category(c) == "Cs" else c for c in text)
    return text


def json_text(value: Any) -> Any:
    """``value`` (nested dicts, lists, strings) with names that are not UTF-8 made visible.

    JSON's own escaping (``json.dumps`` with ``ensure_ascii``) already keeps control
    characters out of the output; lone surrogates would still make the text invalid
    UTF-8 for other JSON readers.
    """
    if isinstance(value, str):
        return _surrogates_escaped(value)
    if isinstance(value, Mapping):
        return {json_text(k): json_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_text(v) for v in value]
    return value
