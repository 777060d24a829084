"""Admin detection: the session-dict fast paths agree with the general rules."""

from __future__ import annotations

from typing import Any

import pytest

from maintenance.roles import RoleResolver


@pytest.mark.parametrize(
    ("user", "admin", "critical"),
    [
        ({"role": "user"}, False, False),
        ({"role": "admin"}, True, False),
        ({"role": "Critical"}, True, True),
        ({"role": None}, False, False),
        ({"roles": "user, critical"}, True, True),
        ({"role": "admin", "is_critical_admin": True}, True, True),
        ({"is_admin": True}, True, False),
        ({}, False, False),
        (None, False, False),
        ("admin", False, False),
    ],
)
def test_admin_and_critical_admin_of_session_dicts(user: Any, admin: bool, critical: bool) -> None:
    resolver = RoleResolver()
    assert resolver.is_admin(user) is admin
    assert resolver.is_critical_admin(user) is critical
