"""Sentinel URLs: both spellings parse to the same deployment, bad ones say what is wrong,
and no password survives redaction."""

from __future__ import annotations

import pytest

from maintenance import Settings, ValidationError
from maintenance.redisconn import resolve_redis_url
from maintenance.redisurl import SentinelURL, canonical_redis_url, parse_sentinel_url, redact
from maintenance.settings import redact_url


def test_the_one_url_form_names_sentinels_master_db_and_passwords() -> None:
    url = "redis+sentinel://:s%40cret@h1:26380,h2/mymaster/3?sentinel_password=sp"
    parsed = parse_sentinel_url(url)
    assert parsed.sentinels == (("h1", 26380), ("h2", 26379))
    assert (parsed.service, parsed.db) == ("mymaster", 3)
    assert (parsed.username, parsed.password, parsed.sentinel_password) == (None, "s@cret", "sp")
    assert parse_sentinel_url(parsed.to_url()) == parsed
    assert parse_sentinel_url("redis+sentinel://h1:26379/mymaster").db == 0


def test_celerys_spelling_needs_the_master_name_and_means_the_same() -> None:
    celery = "sentinel://:pw@h1:26379;sentinel://:pw@h2:26380/2"
    with pytest.raises(ValidationError, match="MAINTENANCE_REDIS_SENTINEL_MASTER"):
        parse_sentinel_url(celery)
    parsed = parse_sentinel_url(celery, master="mymaster")
    assert parsed == SentinelURL((("h1", 26379), ("h2", 26380)), "mymaster", 2, None, "pw")
    settings = Settings(redis_url=celery, redis_sentinel_master="mymaster")
    assert resolve_redis_url(settings) == "redis+sentinel://:pw@h1:26379,h2:26380/mymaster/2"


def test_celery_config_round_trips_to_kombus_spelling() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:pw@h1,h2:26380/mymaster/1?sentinel_password=x")
    url, options = parsed.celery_config()
    assert url == "sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26380/1"
    assert options == {"master_name": "mymaster", "sentinel_kwargs": {"password": "x"}}
    assert parse_sentinel_url(url, master="mymaster") == SentinelURL(
        (("h1", 26379), ("h2", 26380)), "mymaster", 1, None, "pw"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///mymaster/0", "names no sentinel"),
        ("redis+sentinel://h1:26379", "/<master name>"),
        ("redis+sentinel://h1:26379/a/b/c", "/<master name>"),
        ("redis+sentinel://h1:x/mymaster", "bad sentinel address"),
        ("redis+sentinel://h1/mymaster/zero", "database must be a number"),
        ("redis+sentinel://h1/mymaster/0?master=x", "unknown options"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_with_one_line(url: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says) as caught:
        canonical_redis_url(url)
    assert "\n" not in str(caught.value)


def test_a_master_name_without_a_sentinel_url_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="names one server"):
        canonical_redis_url("redis://cache:6379/0", master="mymaster")
    assert canonical_redis_url("redis://cache:6379/0") == "redis://cache:6379/0"


def test_redaction_hides_every_password() -> None:
    assert (
        redact("redis+sentinel://u:pw@h1:1,h2:2/m/0?sentinel_password=sp&x=1")
        == "redis+sentinel://u:***@h1:1,h2:2/m/0?sentinel_password=***&x=1"
    )
    assert redact("sentinel://:a@h1:1;sentinel://:b@h2:2/0") == (
        "sentinel://:***@h1:1;sentinel://:***@h2:2/0"
    )
    assert redact_url("redis://:p@ss@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
