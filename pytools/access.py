"""Who may scrape, and how: the web config in force (TLS, basic auth,
response headers), reread when its files change or on SIGHUP, and the guard
that puts it in front of the routes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Callable, Dict, Optional

from .httpd import FreshRenders, Request, Response, Route, plain
from .webconfig import (PasswordCheck, WebConfig, WebConfigError, file_state, load_web_config,
                        parse_basic, ssl_context)

log = logging.getLogger("bpf-exporter")

# kubelet probes carry no password: health stays open (it says "ok" only).
OPEN_PATHS = ("/healthz", "/-/healthy")


class WebState:
    """The web config in force and its password checks.

    As exporter-toolkit rereads its web config for every connection, so that
    a certificate rotated in place (a Kubernetes Secret, cert-manager) is
    served and a removed client CA stops being trusted without a restart,
    this one rereads it when the file or any file it names has changed
    (device, inode, size or mtime), looked at most once a second as
    connections arrive; SIGHUP rereads it at once. A file that does not
    load is logged in one line (once per change) and the config in force
    stays. Password checks run in a pool of their own: bcrypt is slow by
    design, and a flood of wrong passwords must not hold up scrapes."""

    def __init__(self, path: Optional[str], clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.clock = clock
        self.config = load_web_config(path) if path else WebConfig()
        self.tls = ssl_context(self.config.tls) if self.config.tls else None
        self._state = self._watched_state()
        self._looked_at = clock()
        self._lock = threading.Lock()
        self.passwords = PasswordCheck()
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="auth")

    def _watched_state(self):
        """file_state of the config file and the files the config in force
        names (None without a config file)."""
        if not self.path:
            return None
        return file_state((self.path,) + (self.config.tls.files if self.config.tls else ()))

    def reload(self, why: str = "SIGHUP") -> None:
        """Read the web config and its files again; keep the one in force if
        they do not load."""
        if not self.path:
            log.warning("%s: no --web.config.file to reload", why)
            return
        with self._lock:
            state = self._watched_state()
            try:
                new = load_web_config(self.path)
                tls = ssl_context(new.tls) if new.tls else None
            except WebConfigError as e:
                self._state = state         # said once per change, not per connection
                log.error("web config %s not reloaded (%s), the previous one stays: %s",
                          self.path, why, e)
                return
            self.config, self.tls = new, tls
            self._state = self._watched_state()
        log.warning("web config %s reloaded (%s): %s", self.path, why, new.describe)

    def current_tls(self):
        """The TLS context for a new connection (None: plain HTTP), reloaded
        first if a file changed since the last look (at most once a second)."""
        now = self.clock()
        if self.path and now - self._looked_at >= 1.0:
            self._looked_at = now
            if self._watched_state() != self._state:
                self.reload("a file changed")
        return self.tls

    def headers(self) -> Dict[str, str]:
        return self.config.headers

    async def allowed(self, request: Request) -> bool:
        config = self.config
        if not config.users or request.path in OPEN_PATHS:
            return True
        credentials = parse_basic(request.headers.get("Authorization"))
        if credentials is None:
            return False
        if self.passwords.cached(config.users, *credentials):
            return True
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, self.passwords.check, config.users, *credentials)


def guarded(route: Route, web: WebState) -> Route:
    async def guarded_route(request: Request, renders: FreshRenders) -> Response:
        if not await web.allowed(request):
            return plain(401, "unauthorized", **{"WWW-Authenticate":
                                                 'Basic realm="bpf-exporter", charset="UTF-8"'})
        return await route(request, renders)
    return guarded_route


