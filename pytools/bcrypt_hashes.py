"""basic_auth_users' bcrypt hashes: whether this server can check one
(the form Go's bcrypt takes, the cost, the variant) and its cost."""

from __future__ import annotations

import re
from typing import Optional

import bcrypt

MAX_BCRYPT_COST = 16            # ~4 s a check here; 31 is about two days
BCRYPT_HASH = re.compile(r"^\$2([a-z]?)\$(\d\d)\$(.{53,})$", re.S)


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed[4:6])


def bcrypt_hash_problem(hashed: bytes) -> Optional[str]:
    """Why `hashed` is not a bcrypt hash this server can check, or None.
    Checked without running bcrypt at its cost: the form Go's bcrypt takes,
    the cost, and a check of the same hash at cost 4 (which tells whether
    Python's bcrypt reads this variant and salt)."""
    match = BCRYPT_HASH.match(hashed.decode(errors="replace"))
    if not match or len(hashed) < 59:
        return "not a bcrypt hash (make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"
    cost = int(match.group(2))
    if not 4 <= cost <= 31:
        return f"bcrypt cost {cost} is outside 4-31"
    if cost > MAX_BCRYPT_COST:
        return (f"bcrypt cost {cost} is not supported: each check would take about "
                f"{seconds_text(0.06 * 2 ** (cost - 10))}; use at most {MAX_BCRYPT_COST}")
    try:
        bcrypt.checkpw(b"", hashed[:4] + b"04" + hashed[6:])
    except ValueError:
        return f"a bcrypt variant or salt this server cannot check ({hashed[:4].decode()})"
    return None


def seconds_text(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
