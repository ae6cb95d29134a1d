"""bpf-exporter's daemon: load the chosen tools once, serve /metrics.

The socket is bound before any BPF is compiled, so a port in use fails at
once; programs are loaded next (each collector that cannot attach is
reported and left out, unless strict); then the HTTP server (pytools.httpd)
runs in a thread while the main thread waits for SIGTERM or SIGINT, which
stop the server, detach every program and exit 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import gc
import ipaddress
import logging
import os
import resource
import signal
import socket
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from prometheus_client import CollectorRegistry

from .errors import ToolError
from .exporter import ToolCollector
from .self_metrics import SelfCollector, SelfStats
from .exporter_config import DEFAULT_PORT
from .exposition import CONTENT_TYPE as TEXT_CONTENT_TYPE, text_format
from .exposition_protobuf import CONTENT_TYPE as PROTOBUF_CONTENT_TYPE
from .exposition_protobuf import protobuf_format, wants_protobuf
from .httpd import FreshRenders, HttpServer, Limits, Request, Response, Route, plain
from .memory import release_compile_memory
from .tools import TOOLS, by_name
from .webconfig import (PasswordCheck, WebConfig, WebConfigError, file_state, load_web_config,
                        parse_basic, ssl_context)

log = logging.getLogger("bpf-exporter")

def parse_listen(text: str) -> Tuple[str, int]:
    """'ADDR:PORT', ':PORT' (all addresses), '[v6addr]:PORT' or 'PORT'."""
    if text.startswith("[") and text.endswith("]"):
        raise ValueError(f"{text!r}: the port is missing, e.g. {text}:{DEFAULT_PORT}")
    host, sep, port_text = text.rpartition(":")
    if sep and not port_text:
        raise ValueError(f"{text!r}: the port is missing, e.g. {text}{DEFAULT_PORT}")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:{DEFAULT_PORT}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: the port must be in 1-65535")
    return host, port


def collector_names() -> List[str]:
    return [tool.name for tool in TOOLS]


def parse_collectors(text: str) -> List[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in collector_names()]
    if unknown:
        raise ValueError(f"unknown collector {', '.join(unknown)}; "
                         f"choose from {', '.join(collector_names())}")
    if not names:
        raise ValueError("no collector chosen")
    return list(dict.fromkeys(names))


INDEX_PAGE = """<html><head><title>bpf-exporter</title></head><body>
<h1>bpf-exporter</h1>
<p>eBPF metrics from bpf-pytools: <a href="/metrics">/metrics</a>.
Health: <a href="/healthz">/healthz</a>.</p>
<p>Collectors: {collectors}</p>
</body></html>
"""


def make_route(registry: CollectorRegistry, describe: Callable[[], str]) -> Route:
    async def route(request: Request, renders: FreshRenders) -> Response:
        if request.path == "/metrics":
            if wants_protobuf(request.headers.get("Accept")):
                body = await renders.get("protobuf",
                                         lambda: protobuf_format(registry.collect()))
                return Response(200, body, PROTOBUF_CONTENT_TYPE, {"Vary": "Accept"})
            body = await renders.get("text", lambda: text_format(registry.collect()))
            return Response(200, body, TEXT_CONTENT_TYPE, {"Vary": "Accept"})
        if request.path == "/":
            return Response(200, INDEX_PAGE.format(collectors=describe()).encode(),
                            "text/html; charset=utf-8")
        if request.path in ("/healthz", "/-/healthy"):
            return plain(200, "ok")
        return plain(404, "not found: try /metrics")
    return route


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


def bind(host: str, port: int) -> socket.socket:
    """Bind now (before any BPF is compiled), so a bad address or a port in
    use is a one-line error at once."""
    family = socket.AF_INET
    try:
        if host and ipaddress.ip_address(host).version == 6:
            family = socket.AF_INET6
    except ValueError:
        pass   # a host name: resolved by bind below
    try:
        # A deep backlog: a burst of scrapers (many Prometheus replicas)
        # waits in the kernel instead of being refused.
        return socket.create_server((host, port), family=family, backlog=4096)
    except socket.gaierror as e:
        raise ToolError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    except OSError as e:
        hint = None
        if e.errno == errno.EADDRINUSE:
            hint = f"another process has port {port}; pick another with --listen"
        raise ToolError(f"cannot listen on {host or '*'}:{port}: {os.strerror(e.errno)}", hint) from None


def raise_file_limit() -> int:
    """Lift the soft open-file limit to the hard one (as Go programs do at
    start): each open connection is a file. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def parse_probe_modes(values: Sequence[str]) -> Dict[str, str]:
    """--probe COLLECTOR=MODE options (force a collector's probe mode)."""
    modes = {}
    for value in values:
        name, sep, mode = value.partition("=")
        if not sep or name not in collector_names():
            raise ValueError(f"{value!r}: expected COLLECTOR=MODE with COLLECTOR one of "
                             f"{', '.join(collector_names())}")
        offered = ["auto"] + by_name(name).modes()
        if mode not in offered:
            raise ValueError(f"{value!r}: expected COLLECTOR=MODE with MODE one of "
                             f"{', '.join(offered)} for {name}")
        modes[name] = mode
    return modes


def load_collectors(names: Sequence[str], stats: SelfStats, max_series: int, strict: bool,
                    modes: Optional[Dict[str, str]] = None,
                    options: Optional[Dict[str, dict]] = None) -> Tuple[list, list]:
    """(collectors, loaded tools). A collector that cannot attach is logged
    and marked down; with strict it is fatal. options: each tool's exporter
    options, by tool name."""
    kernel = os.uname().release
    modes, options = modes or {}, options or {}
    collectors = []
    try:
        for name in names:
            tool = by_name(name)
            try:
                source = tool.exporter_open(options.get(name, {}), modes.get(name, "auto"))
                collectors.append(ToolCollector(tool, source, stats, kernel, max_series,
                                                options.get(name, {})))
                probe = collectors[-1].probe
                log.info("collector %s: %s (%s)", name, probe["label"], ", ".join(probe["hooks"]))
            except ToolError as e:
                if strict:
                    raise ToolError(f"collector {name}: {e}", "without --strict it would be "
                                    "left out and reported as bpf_exporter_collector_up 0")
                log.error("collector %s left out: %s", name, e)
                stats.up[name] = False
    except BaseException:
        for c in collectors:
            c.source.close()
        raise
    return collectors, [c.source for c in collectors]


def serve(listen: str, names: Sequence[str], max_series: int, strict: bool,
          announce: Callable[[str], None], modes: Optional[Dict[str, str]] = None,
          options: Optional[Dict[str, dict]] = None, limits: Optional[Limits] = None,
          web_config: Optional[str] = None) -> None:
    host, port = parse_listen(listen)
    try:
        web = WebState(web_config)
    except WebConfigError as e:
        raise ToolError(f"--web.config.file {web_config}: {e}") from None
    limits = limits or Limits()
    files = raise_file_limit()
    if limits.max_connections > files - 64:
        log.warning("--max-connections %d is over what the open-file limit %d allows; "
                    "using %d", limits.max_connections, files, max(1, files - 64))
        limits = Limits(limits.read_timeout, max(1, files - 64))
    stats = SelfStats()
    registry = CollectorRegistry(auto_describe=False)

    def describe() -> str:
        return ", ".join(f"{c.name} ({c.probe['label']})" for c in collectors) or "none"

    collectors: list = []
    sock = bind(host, port)
    http = HttpServer([sock], guarded(make_route(registry, describe), web), limits,
                      tls=web.current_tls, headers=web.headers)
    stop, reload = threading.Event(), threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: reload.set())
    tools: list = []
    run_stats = None
    try:
        # What every collector needs (privileges, tracefs, headers, bcc):
        # checked once, so its failure is one line, not one per collector.
        from .loader import prepare
        prepare()
        collectors, tools = load_collectors(names, stats, max_series, strict, modes, options)
        if not collectors:
            raise ToolError("no collector could attach", "run `pytools doctor` to see why")
        for c in collectors:
            registry.register(c)
        from .runstats import RunStats
        run_stats = RunStats()
        if run_stats.problem:
            log.warning("program cost not exported: %s", run_stats.problem)
        registry.register(SelfCollector(stats, collectors, run_stats))
        # What start-up made (bcc's tables, the compiled programs' objects)
        # lives as long as the process: out of the cyclic collector's sight,
        # so that its passes during scrapes stay short.
        gc.collect()
        gc.freeze()
        release_compile_memory()
        http.start()
        shown = host if ":" not in host else f"[{host}]"
        scheme = "https" if web.tls else "http"
        announce(f"Serving {scheme}://{shown or '0.0.0.0'}:{sock.getsockname()[1]}/metrics "
                 f"with {describe()}" + (f" ({web.config.describe})" if web_config else "")
                 + ". Hit Ctrl-C to end.")
        while not stop.wait(0.5):
            if reload.is_set():
                reload.clear()
                web.reload()
    finally:
        http.stop()
        if run_stats is not None:
            run_stats.close()
        # Detach the tools at once: each waits on the kernel, not the CPU.
        closers = [threading.Thread(target=tool.close) for tool in tools]
        for t in closers:
            t.start()
        for t in closers:
            t.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
