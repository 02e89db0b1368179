"""One HTTPS semantics: what only TLS has (certificates, names, CAs, handshakes that fail or
hang) gives the same verdict and reason through the lean path and through aiohttp, and the
lean path reads the certificate's expiry from the probe's own handshake.

The cases run through tests/test_http_parity.py's machinery (real servers on 127.0.0.1 with
trustme certificates, every request recorded and compared between the ways).
"""

from __future__ import annotations

import pytest

from checks.base import HANDSHAKE_CUT
from tests.fakes_probes import Certs, make_certs
from tests.test_http_parity import Case, run_way

VERIFY = "TLS: certificate verify failed: "
BOTH = ("tls", "lean-tls")

TLS_CASES = [
    Case(
        "valid",
        {"url": "{main}/ok", "contains": "OK"},
        True,
        "status 200",
        [("main", "GET", "/ok")],
    ),
    Case(
        "valid-by-name",
        {"url": "{main}/ok"},
        True,
        "status 200",
        [("main", "GET", "/ok")],
        host="localhost",  # ::1 first, where nothing listens, then 127.0.0.1
    ),
    Case(
        "expired",
        {"url": "{main}/ok"},
        False,
        VERIFY + "certificate has expired",
        [],
        cert="expired",
    ),
    Case(
        "self-signed",
        {"url": "{main}/ok"},
        False,
        VERIFY + "self-signed certificate",
        [],
        cert="self_signed",
    ),
    Case(
        "self-signed-not-verified",
        {"url": "{main}/ok", "verify_tls": False},
        True,
        "status 200",
        [("main", "GET", "/ok")],
        cert="self_signed",
    ),
    Case(
        "unknown-ca-system-store",
        {"url": "{main}/ok", "ca_file": None},
        False,
        VERIFY + "unable to get local issuer certificate",
        [],
    ),
    Case(
        "wrong-ip-address",
        {"url": "{main}/ok"},
        False,
        VERIFY + "IP address mismatch, certificate is not valid for '127.0.0.1'.",
        [],
        cert="named",
    ),
    Case(
        "wrong-host-name",
        {"url": "{main}/ok"},
        False,
        VERIFY + "Hostname mismatch, certificate is not valid for 'localhost'.",
        [],
        cert="named",
        host="localhost",
    ),
    Case(
        "wrong-name-not-verified",
        {"url": "{main}/ok", "verify_tls": False},
        True,
        "status 200",
        [("main", "GET", "/ok")],
        cert="named",
    ),
    Case(
        "no-shared-cipher",
        {"url": "{main}/ok"},
        False,
        "TLS: sslv3 alert handshake failure",
        [],
        cert="refusing-no_shared_cipher",
    ),
    Case(
        "tls-1.1-server",
        {"url": "{main}/ok"},
        False,
        "TLS: tlsv1 alert protocol version",
        [],
        cert="refusing-old_tls",
    ),
    Case(
        "plain-http-port",
        {"url": "{main}/ok"},
        False,
        "TLS: wrong version number",
        [],
        cert="plain",
    ),
    Case(
        "closed-during-handshake",
        {"url": "{main}/ok"},
        False,
        HANDSHAKE_CUT,
        [],
        cert="hang-up",
    ),
    Case(
        "silent-during-handshake",
        {"url": "{main}/"},
        False,
        "timeout after 300ms",
        [],
        raw=b"",
        raw_hang_up=False,
        timeout=0.3,
        repeat=1,
        cert="plain",
    ),
    Case(
        "redirect-https-to-other-https",
        {"url": "{main}/go/307?to={other}/echo", "method": "POST", "body": "ping"},
        True,
        "status 200",
        [("main", "POST", "/go/307?to={other}/echo"), ("other", "POST", "/echo")],
    ),
    Case(
        "redirect-https-to-http",
        {"url": "{main}/go/302?to={plain}/ok", "contains": "OK"},
        True,
        "status 200",
        [("main", "GET", "/go/302?to={plain}/ok"), ("plain", "GET", "/ok")],
    ),
    Case(
        "redirect-to-https-with-a-bad-certificate",
        {"url": "{main}/go/302?to={other}/ok"},
        False,
        VERIFY + "certificate has expired",
        [("main", "GET", "/go/302?to={other}/ok")],
        other_cert="expired",
    ),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("case", TLS_CASES, ids=[case.id for case in TLS_CASES])
async def test_both_paths_agree_over_tls(case: Case, certs: Certs) -> None:
    outcomes = {way: await run_way(case, way, certs) for way in BOTH}
    for way, outcome in outcomes.items():
        assert outcome.results == [(case.ok, case.reason)] * case.repeat, way
        hits = [(role, method, target) for role, method, target, _, _ in outcome.seen]
        assert hits == case.hits * case.repeat, way
    assert outcomes["lean-tls"].seen == outcomes["tls"].seen
