"""Jira comments in Atlassian Document Format: the ones we write, and their text read back.

A comment whose answer was lost is looked for by its text: our body rendered the way we send it
(``comment_payload``), its text nodes compared with those of each comment of ours on the issue
(``adf_text``, whitespace collapsed by ``same_text``), so an internal note matches only an
internal note (its ``[internal]`` prefix is part of the text). The ADF structure is documented at
https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/.
"""

from __future__ import annotations

from typing import Any, Final

from ticketing.base import same_text

INTERNAL_PREFIX: Final = "[internal] "
INTERNAL_PROPERTY: Final[dict[str, Any]] = {"key": "sd.public.comment", "value": {"internal": True}}


def adf(text: str) -> dict[str, Any]:
    """Plain text as an ADF document: one paragraph per line; a blank line, an empty one."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraphs: list[dict[str, Any]] = []
    for line in lines:
        content = [{"type": "text", "text": line}] if line else []
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def comment_payload(body: str, public: bool) -> dict[str, Any]:
    if public:
        return {"body": adf(body)}
    return {"body": adf(INTERNAL_PREFIX + body), "properties": [dict(INTERNAL_PROPERTY)]}


def adf_text(node: Any) -> str:
    """The text of an ADF node: its text nodes in order, a line break between block nodes and
    for each ``hardBreak``."""
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    children = node.get("content")
    parts = [adf_text(child) for child in children] if isinstance(children, list) else []
    inline = all(
        isinstance(c, dict) and c.get("type") in ("text", "hardBreak") for c in children or []
    )
    return "".join(parts) if inline else "\n".join(parts)


def is_note(comment: Any, account_id: str, body: str, public: bool) -> bool:
    """Whether a listed comment is this note of ours, as we would have sent it."""
    if not isinstance(comment, dict):
        return False
    author = comment.get("author")
    if not isinstance(author, dict) or author.get("accountId") != account_id:
        return False
    sent = adf_text(comment_payload(body, public)["body"])
    return same_text(adf_text(comment.get("body")), sent)
