"""``[cluster]`` is validated like every other section: each problem names its dotted key, the
lease timings are checked against each other, and the database URL (a secret) is only ever
named by where it is, never written in the file nor echoed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from tests.helpers import run_cli

MINIMAL = """
[[targets]]
name = "web"
kind = "http"
url = "http://127.0.0.1:1/"
"""
URL_ENV = 'database_url_env = "WATCHDESK_DATABASE_URL"\n'


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL + text, "test.toml")
    return {p.path: p.message for p in caught.value.problems}


def test_without_the_section_the_store_stays_sqlite() -> None:
    assert parse_config(MINIMAL).cluster is None


def test_the_defaults() -> None:
    cluster = parse_config(MINIMAL + "[cluster]\n" + URL_ENV).cluster
    assert cluster is not None
    assert (cluster.slots, cluster.lease_ttl, cluster.lease_renew) == (1024, 20.0, 5.0)
    assert (cluster.claim_ttl, cluster.db_lost_page_after) == (60.0, 120.0)
    assert cluster.vantage  # this machine's name
    assert all(c.isalnum() or c in "_-" for c in cluster.vantage)


def test_a_lease_must_be_renewed_three_times_in_its_life() -> None:
    found = problems_of("[cluster]\n" + URL_ENV + 'lease_ttl = "12s"\nlease_renew = "5s"\n')
    assert found == {
        "cluster.lease_renew": "5s is more than a third of lease_ttl 12s; an agent must renew at "
        "least three times per lease: shorten lease_renew or lengthen lease_ttl"
    }
    ok = parse_config(MINIMAL + "[cluster]\n" + URL_ENV + 'lease_ttl = "15s"\nlease_renew = "5s"\n')
    assert ok.cluster is not None


def test_a_claim_outlasts_the_slowest_attempt_twice() -> None:
    found = problems_of(
        '[ticketing]\nrequest_timeout = "40s"\n[cluster]\n' + URL_ENV + 'claim_ttl = "1m"\n'
    )
    assert list(found) == ["cluster.claim_ttl"]
    assert "shorter than twice ticketing.request_timeout (40s)" in found["cluster.claim_ttl"]


def test_the_url_comes_from_exactly_one_place() -> None:
    assert "cluster.database_url_env" in problems_of('[cluster]\nvantage = "east"\n')
    found = problems_of("[cluster]\n" + URL_ENV + 'database_url_file = "/etc/wd/url"\n')
    assert found == {
        "cluster.database_url_file": "set database_url_env or database_url_file, not both"
    }


def test_a_url_written_in_the_file_is_refused_without_echoing_it() -> None:
    found = problems_of('[cluster]\ndatabase_url = "postgresql://wd:s3cret-pw@db/wd"\n')
    assert list(found) == ["cluster.database_url"]
    assert found["cluster.database_url"].startswith("a secret must not be written")
    assert "s3cret-pw" not in found["cluster.database_url"]


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("slots = 0\n", "cluster.slots", "greater than or equal to 1"),
        ('vantage = "east coast"\n', "cluster.vantage", "must match pattern"),
        ('lease_tll = "20s"\n', "cluster.lease_tll", 'did you mean "lease_ttl"?'),
        ('db_lost_page_after = "soon"\n', "cluster.db_lost_page_after", "not a duration"),
    ],
)
def test_each_key_is_checked(text: str, key: str, says: str) -> None:
    found = problems_of("[cluster]\n" + URL_ENV + text)
    assert key in found
    assert says in found[key]


def test_an_unreadable_url_is_named_by_key_and_exits_2(write_config: Callable[..., Path]) -> None:
    path = str(write_config(MINIMAL + '[cluster]\ndatabase_url_env = "WD_TEST_NO_SUCH_VAR"\n'))
    for command in ("check-config", "run", "tickets"):
        result = run_cli(command, "-c", path)
        assert result.returncode == 2, (command, result.stderr)
        assert "cluster.database_url: environment variable WD_TEST_NO_SUCH_VAR is not set" in (
            result.stderr
        ), (command, result.stderr)
        assert "Traceback" not in result.stderr
