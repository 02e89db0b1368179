"""Find the line of a key in a TOML text, so config errors can say where to look.

tomllib keeps no positions; this scanner follows table headers, array-of-tables counters and
``key = value`` lines, which is all a config file needs. A key it cannot place gets no line.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)

Path = tuple[str | int, ...]


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""", text)
    return [a or b or c for a, b, c in parts]


def key_lines(text: str) -> dict[Path, int]:
    """Map each key path (array-of-tables entries indexed from 0) to its 1-based line."""
    lines: dict[Path, int] = {}
    array_counts: dict[tuple[str, ...], int] = {}
    current: Path = ()
    in_multiline = False
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if '"""' in line or "'''" in line:
                in_multiline = False
            continue
        header = _HEADER.match(line)
        if header:
            names = _split_dotted(header.group(2))
            current = _resolve(names, array_counts)
            if header.group(1) == "[[":
                plain = tuple(names)
                array_counts[plain] = array_counts.get(plain, -1) + 1
                current = (*_resolve(names[:-1], array_counts), names[-1], array_counts[plain])
            lines.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            path = (*current, *_split_dotted(key.group(1)))
            lines.setdefault(path, number)
            if line.count('"""') == 1 or line.count("'''") == 1:
                in_multiline = True
    return lines


def _resolve(names: list[str], array_counts: dict[tuple[str, ...], int]) -> Path:
    """Turn header names into a path, inserting the current index of any array of tables."""
    path: list[str | int] = []
    for depth, name in enumerate(names):
        path.append(name)
        index = array_counts.get(tuple(names[: depth + 1]))
        if index is not None:
            path.append(index)
    return tuple(path)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of the deepest known prefix of ``path``."""
    for end in range(len(path), 0, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return None
