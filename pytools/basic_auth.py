"""Basic-auth credentials: the header's parsing, bcrypt checks that take the
same work whoever asks, and the bounded queue that keeps a flood of wrong
passwords from holding scrapes up."""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import hashlib
import os
import threading
from collections import OrderedDict
from typing import Callable, Dict, Optional, Tuple

import bcrypt

from .bcrypt_hashes import bcrypt_cost

BCRYPT_MAX_BYTES = 72
DEFAULT_COST = 10       # the stand-in's cost when no user is configured


def parse_basic(header: Optional[str]) -> Optional[Tuple[str, str]]:
    """(user, password) from an Authorization header, or None for anything
    that is not well-formed Basic credentials (non-ASCII, bad base64, not
    UTF-8, no colon)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):        # ValueError: a non-ASCII token
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _bcrypt_checkpw(password: bytes, hashed: bytes) -> bool:
    return bcrypt.checkpw(password, hashed)


class PasswordCheck:
    """bcrypt checks of basic-auth credentials against the users' hashes.

    Every check does the same work, whatever the user and the password:
    one bcrypt run at each cost the users' hashes have, against the user's
    own hash at its cost and against a stand-in hash of the same cost at
    the others. An unknown user, a cheap user, a costly user, a password
    with a NUL byte (run with the NUL replaced, and wrong) or of any length
    (bcrypt reads the first 72 bytes, as Go's does, so exporter-toolkit)
    cost the same runs: no clock, no padding to a measured target. bcrypt's
    own comparison is constant-time. bcrypt is slow by design (~60 ms at
    cost 10), so good answers are remembered (keyed by a hash of user,
    password and stored hash, bounded), as exporter-toolkit does: a scraper
    pays once, not per scrape. Wrong answers are never remembered."""

    def __init__(self, size: int = 256,
                 checkpw: Callable[[bytes, bytes], bool] = _bcrypt_checkpw):
        self._good: "OrderedDict[bytes, None]" = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._stand_in: Dict[int, bytes] = {}
        self._checkpw = checkpw

    def _stand_in_hash(self, cost: int) -> bytes:
        with self._lock:
            if cost not in self._stand_in:
                self._stand_in[cost] = bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(cost))
            return self._stand_in[cost]

    def cached(self, users: Dict[str, bytes], user: str, password: str) -> bool:
        key = self._key(users, user, password)
        with self._lock:
            return key is not None and key in self._good

    def check(self, users: Dict[str, bytes], user: str, password: str) -> bool:
        stored = users.get(user)
        secret = password.encode()[:BCRYPT_MAX_BYTES]
        usable = b"\0" not in secret
        secret = secret.replace(b"\0", b"\1")
        ok = False
        for cost in sorted({bcrypt_cost(h) for h in users.values()} or {DEFAULT_COST}):
            mine = stored is not None and bcrypt_cost(stored) == cost
            hashed = stored if mine and stored is not None else self._stand_in_hash(cost)
            try:
                matches = self._checkpw(secret, hashed)
            except ValueError:          # a hash bcrypt will not read: wrong
                matches = False
            ok = ok or (mine and matches and usable)
        key = self._key(users, user, password) if ok else None
        if key is not None:
            with self._lock:
                self._good[key] = None
                while len(self._good) > self._size:
                    self._good.popitem(last=False)
        return ok

    @staticmethod
    def _key(users: Dict[str, bytes], user: str, password: str) -> Optional[bytes]:
        stored = users.get(user)
        if stored is None:
            return None
        return hashlib.sha256(b"\0".join([user.encode(), password.encode(), stored])).digest()


class CheckQueue:
    """Password checks in a pool of their own, at most `bound` queued or
    running: one more is refused at once (None), so a flood of wrong
    passwords costs the flood its own answers, never a wait for others."""

    def __init__(self, threads: int = 2, bound: int = 8):
        self.pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="auth")
        self.bound = bound
        self.pending = 0            # touched on the event loop only
        self.refused = 0

    async def run(self, check: Callable[..., bool], *args) -> Optional[bool]:
        if self.pending >= self.bound:
            self.refused += 1
            return None
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, check, *args)
        finally:
            self.pending -= 1
