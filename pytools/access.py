"""Who may scrape, and how: the web config in force (TLS, basic auth,
response headers), reread when its files change or on SIGHUP, and the guard
that puts it in front of the routes."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Optional

from .basic_auth import CheckQueue, PasswordCheck, parse_basic
from .http_messages import Request, Response, plain
from .httpd import FreshRenders, Route
from .webconfig import WebConfig, WebConfigError, ssl_context
from .webconfig_file import file_state, load_web_config

log = logging.getLogger("bpf-exporter")

# kubelet probes carry no password: health stays open (it says "ok" only).
OPEN_PATHS = ("/healthz", "/-/healthy")
# How much a client certificate is asked for, weakest first.
CLIENT_AUTH_RANK = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
LOOK_EVERY = 1.0        # seconds between looks at the files' state


def lowered(old: WebConfig, new: WebConfig, explicit: bool) -> Optional[str]:
    """Why `new` may not replace `old`, or None.

    Never, even on SIGHUP: TLS turned off (the scheme is chosen at start,
    as exporter-toolkit chooses it; that takes a restart), nor a file that
    configures nothing while the one in force does (an empty or truncated
    file). On an automatic reload (a file changed), nothing that lowers
    security: basic auth turned off, client certificates asked for less,
    a lower min_version. SIGHUP, an operator's deliberate act, may apply
    those."""
    if old.tls and not new.tls:
        return "it turns TLS off, which takes a restart"
    if new == WebConfig() and old != WebConfig():
        return "it configures nothing (an empty or truncated file?)"
    if explicit:
        return None
    if old.users and not new.users:
        return "it turns basic auth off (send SIGHUP to apply that on purpose)"
    if old.tls and new.tls:
        if CLIENT_AUTH_RANK.index(new.tls.client_auth) < \
                CLIENT_AUTH_RANK.index(old.tls.client_auth):
            return (f"it lowers client_auth_type from {old.tls.client_auth} to "
                    f"{new.tls.client_auth} (send SIGHUP to apply that on purpose)")
        if new.tls.min_version < old.tls.min_version:
            return (f"it lowers min_version from {old.tls.min_version} to "
                    f"{new.tls.min_version} (send SIGHUP to apply that on purpose)")
    return None


class WebState:
    """The web config in force and its password checks.

    As exporter-toolkit rereads its web config for every connection and
    every request, so that a certificate rotated in place (a Kubernetes
    Secret, cert-manager) is served, a removed client CA stops being
    trusted and a removed user stops working without a restart, this one
    rereads it when the file or any file it names has changed (device,
    inode, size or mtime, taken before reading them, so a write during a
    reload is seen at the next look), looked at most once a second as
    connections and requests arrive; SIGHUP rereads it at once. It fails
    closed: a file that does not load, or one `lowered` refuses, is logged
    in one line (once per change) and the config in force stays.

    Password checks run in a bounded queue of their own (CheckQueue):
    bcrypt is slow by design, and a flood of wrong passwords gets 503 for
    its excess instead of holding up scrapes; a connection whose check
    waits may be closed to make room, and a wrong password closes its
    connection (each guess costs the guesser a new one)."""

    def __init__(self, path: Optional[str], clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.clock = clock
        if path:
            self.config, self.tls, self._state = self._load()
        else:
            self.config, self.tls, self._state = WebConfig(), None, None
        self._looked_at = clock()
        self._lock = threading.Lock()
        self.passwords = PasswordCheck()
        self.checks = CheckQueue()

    def _watched_state(self):
        """file_state of the config file and the files the config in force
        names (None without a config file)."""
        if not self.path:
            return None
        return file_state((self.path,) + (self.config.tls.files if self.config.tls else ()))

    def _load(self):
        """(config, TLS context, files' state): each file's state taken
        before the read that counts (the config file's before it is read,
        the named files' before the context in force reads them), so a
        write that lands meanwhile is seen at the next look."""
        before = file_state((self.path,))
        config = load_web_config(self.path)
        state = before + file_state(config.tls.files if config.tls else ())
        return config, ssl_context(config.tls) if config.tls else None, state

    def reload(self, why: str = "SIGHUP") -> None:
        """Read the web config and its files again; keep the one in force if
        they do not load or `lowered` refuses the new one."""
        if not self.path:
            log.warning("%s: no --web.config.file to reload", why)
            return
        with self._lock:
            seen = self._watched_state()        # before reading: a later write is seen
            try:
                new, tls, state = self._load()
                problem = lowered(self.config, new, explicit=why == "SIGHUP")
                if problem:
                    raise WebConfigError(problem)
            except WebConfigError as e:
                self._state = seen          # said once per change, not per connection
                log.error("web config %s not reloaded (%s), the previous one stays: %s",
                          self.path, why, e)
                return
            self.config, self.tls, self._state = new, tls, state
        log.warning("web config %s reloaded (%s): %s", self.path, why, new.describe)

    def look(self) -> None:
        """Reload if a watched file changed since the last look (at most
        once a second)."""
        now = self.clock()
        if self.path and now - self._looked_at >= LOOK_EVERY:
            self._looked_at = now
            if self._watched_state() != self._state:
                self.reload("a file changed")

    def current_tls(self):
        """The TLS context for a new connection (None: plain HTTP)."""
        self.look()
        return self.tls

    def headers(self) -> Dict[str, str]:
        return self.config.headers

    async def verdict(self, request: Request) -> Optional[bool]:
        """True: let it in; False: wrong or no credentials; None: the
        password-check queue is full."""
        self.look()         # every request against the users in force now
        config = self.config
        if not config.users or request.path in OPEN_PATHS:
            return True
        credentials = parse_basic(request.headers.get("Authorization"))
        if credentials is None:
            return False
        if self.passwords.cached(config.users, *credentials):
            return True
        request.evictable(True)
        try:
            return await self.checks.run(self.passwords.check, config.users, *credentials)
        finally:
            request.evictable(False)


CHALLENGE = {"WWW-Authenticate": 'Basic realm="bpf-exporter", charset="UTF-8"'}


def guarded(route: Route, web: WebState) -> Route:
    async def guarded_route(request: Request, renders: FreshRenders) -> Response:
        verdict = await web.verdict(request)
        if verdict is None:
            response = plain(503, "too many password checks at once; try again", **{
                "Retry-After": "1"})
            response.close = True
            return response
        if not verdict:
            response = plain(401, "unauthorized", **CHALLENGE)
            # A wrong password closes the connection: each guess costs a new one.
            response.close = "Authorization" in request.headers
            return response
        return await route(request, renders)
    return guarded_route
