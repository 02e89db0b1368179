"""DNS messages as the dns probe needs them: the query, built once per target, and the parts of
a response the verdict reads, parsed by hand.

dnspython's ``Message.from_wire`` costs about 0.1 ms per response, half of a whole probe; the
probe needs the header, a check that the response answers our question, and the records of the
answer section that its question leads to. The query is byte for byte what dnspython's resolver
sends (recursion desired, no EDNS); the answer is what its ``Answer.rrset`` holds (the records
of the asked type at the end of the CNAME chain from the asked name, duplicates dropped), and
record texts are dnspython's (names without the final dot, with its escapes).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

A, NS, CNAME, MX, TXT, AAAA = 1, 2, 5, 15, 16, 28
IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN = 0, 1, 2, 3, 4, 5, 6
RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN"}
MAX_CHAIN = 16  # as dnspython: a longer CNAME chain is an error
_RECURSION_DESIRED = 0x0100
_ESCAPED = frozenset(b'"().;\\@$')


class BadResponse(Exception):
    """The response cannot be read (dnspython's FormError and friends)."""


@dataclass(frozen=True, slots=True)
class Reply:
    rcode: int
    truncated: bool
    # (preference, text) of the answer's records; preference is 0 but for MX
    records: tuple[tuple[int, str], ...]


def query(qname: bytes, rdtype: int) -> bytes:
    """The query after its two ID bytes; ``qname`` is the name in wire form."""
    return (
        struct.pack("!HHHHH", _RECURSION_DESIRED, 1, 0, 0, 0)
        + qname
        + struct.pack("!HH", rdtype, IN)
    )


def is_response_to(data: bytes, sent: bytes) -> bool:
    """Whether ``data`` (a whole message) answers ``sent`` (a query after its ID, as built by
    ``query``): QR set, same opcode, same question (names compared without case)."""
    if len(data) < len(sent) + 2 or not data[2] & 0x80 or (data[2] ^ sent[0]) & 0x78:
        return False
    if data[4:6] != b"\x00\x01":
        return False
    question, asked = data[12 : len(sent) + 2], sent[10:]
    return question[-4:] == asked[-4:] and question[:-4].lower() == asked[:-4].lower()


def parse(data: bytes, qname: bytes, rdtype: int) -> Reply:
    """The rcode, the TC bit and the answer to (qname, rdtype) of a response to our query."""
    if len(data) < 12:
        raise BadResponse("short header")
    flags, qdcount, ancount = struct.unpack_from("!HHH", data, 2)
    rcode = flags & 0x000F
    truncated = bool(flags & 0x0200)
    if truncated or rcode != NOERROR:
        return Reply(rcode, truncated, ())
    offset = 12
    for _ in range(qdcount):
        _, offset = _name(data, offset)
        offset += 4
    found: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for _ in range(ancount):
        owner, offset = _name(data, offset)
        if offset + 10 > len(data):
            raise BadResponse("truncated record")
        kind, klass, _ttl, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        end = offset + length
        if end > len(data):
            raise BadResponse("truncated record")
        if klass == IN and kind in (rdtype, CNAME):
            found.setdefault((owner.lower(), kind), []).append(_rdata(data, offset, end, kind))
        offset = end
    return Reply(NOERROR, False, _chase(found, _name(qname, 0)[0].lower(), rdtype))


def _chase(
    found: dict[tuple[str, int], list[tuple[int, str]]], name: str, rdtype: int
) -> tuple[tuple[int, str], ...]:
    for _ in range(MAX_CHAIN):
        records = found.get((name, rdtype))
        if records is not None:
            return tuple(dict.fromkeys(records))
        alias = found.get((name, CNAME)) if rdtype != CNAME else None
        if not alias:
            return ()
        name = alias[0][1].lower()
    raise BadResponse("CNAME chain too long")


def _rdata(data: bytes, start: int, end: int, kind: int) -> tuple[int, str]:
    if kind == A and end - start == 4:
        return 0, socket.inet_ntop(socket.AF_INET, data[start:end])
    if kind == AAAA and end - start == 16:
        return 0, socket.inet_ntop(socket.AF_INET6, data[start:end])
    if kind in (CNAME, NS):
        return 0, _name(data, start)[0]
    if kind == MX and end - start >= 3:
        return struct.unpack_from("!H", data, start)[0], _name(data, start + 2)[0]
    if kind == TXT:
        parts = []
        offset = start
        while offset < end:
            size = data[offset]
            parts.append(data[offset + 1 : offset + 1 + size])
            offset += 1 + size
        if offset != end:
            raise BadResponse("bad TXT record")
        return 0, b"".join(parts).decode("utf-8", errors="replace")
    raise BadResponse(f"bad record of type {kind}")


def _name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (compression followed) as dnspython prints it without the final
    dot, and the offset after it where it stands."""
    labels: list[str] = []
    after = -1
    jumps = 0
    while True:
        if offset >= len(data):
            raise BadResponse("truncated name")
        size = data[offset]
        if size >= 0xC0:
            if offset + 1 >= len(data) or jumps > 127:
                raise BadResponse("bad compression pointer")
            if after < 0:
                after = offset + 2
            offset = ((size & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            continue
        if size > 63:
            raise BadResponse("bad label")
        if size == 0:
            return ".".join(labels), after if after >= 0 else offset + 1
        labels.append(_label(data[offset + 1 : offset + 1 + size]))
        offset += 1 + size


def _label(raw: bytes) -> str:
    if all(0x20 < byte < 0x7F and byte not in _ESCAPED for byte in raw):
        return raw.decode("ascii")
    return "".join(
        "\\" + chr(byte)
        if byte in _ESCAPED
        else chr(byte)
        if 0x20 < byte < 0x7F
        else f"\\{byte:03d}"
        for byte in raw
    )
