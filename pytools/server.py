"""bpf-exporter's daemon: load the chosen tools once, serve /metrics.

The socket is bound before any BPF is compiled, so a port in use fails at
once; programs are loaded next (each collector that cannot attach is
reported and left out, unless strict); then the HTTP server (pytools.httpd)
runs in a thread while the main thread waits for SIGTERM or SIGINT, which
stop the server, detach every program and exit 0.
"""

from __future__ import annotations

import errno
import gc
import gzip
import ipaddress
import logging
import os
import resource
import signal
import socket
import threading
from typing import Callable, Dict, Optional, Sequence, Tuple

from prometheus_client import CollectorRegistry

from .errors import ToolError
from .exporter import ToolCollector
from .self_metrics import SelfCollector, SelfStats
from .version import BuildInfoCollector, build_info
from .access import OPEN_PATHS, WebState, guarded
from .exporter_config import parse_listen
from .exposition import CONTENT_TYPE as TEXT_CONTENT_TYPE, text_format
from .exposition_protobuf import CONTENT_TYPE as PROTOBUF_CONTENT_TYPE
from .exposition_protobuf import protobuf_format, wants_protobuf
from .http_messages import Request, Response, accepts_gzip, plain
from .httpd import FreshRenders, HttpServer, Limits, Route
from .memory import release_compile_memory
from .tools import by_name
from .webconfig import WebConfigError
from .self_metrics import program_costs_of
from .selfcost import SelfCost

log = logging.getLogger("bpf-exporter")

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
            protobuf = wants_protobuf(request.headers.get("Accept"))

            def encode() -> bytes:
                return (protobuf_format if protobuf else text_format)(registry.collect())
            kind = "protobuf" if protobuf else "text"
            content_type = PROTOBUF_CONTENT_TYPE if protobuf else TEXT_CONTENT_TYPE
            headers = {"Vary": "Accept, Accept-Encoding"}
            if accepts_gzip(request.headers.get("Accept-Encoding")):
                # Level 1: at 110 pods it takes the text answer from 327 KB
                # to 20 KB (docs/fleet.md, with its cost).
                body = await renders.get(kind + "+gzip", lambda: gzip.compress(
                    encode(), compresslevel=1, mtime=0))
                headers["Content-Encoding"] = "gzip"
            else:
                body = await renders.get(kind, encode)
            return Response(200, body, content_type, headers)
        if request.path == "/":
            return Response(200, INDEX_PAGE.format(collectors=describe()).encode(),
                            "text/html; charset=utf-8")
        if request.path in OPEN_PATHS:
            return plain(200, "ok")
        return plain(404, "not found: try /metrics")
    return route


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
        hint = ""
        if e.errno == errno.EADDRINUSE:
            hint = f"another process has port {port}; pick another with --listen"
        why = os.strerror(e.errno) if e.errno else str(e)
        raise ToolError(f"cannot listen on {host or '*'}:{port}: {why}", hint) from None


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


def load_collectors(names: Sequence[str], stats: SelfStats, max_series: int, strict: bool,
                    modes: Optional[Dict[str, str]] = None,
                    options: Optional[Dict[str, dict]] = None) -> Tuple[list, list]:
    """(collectors, their readers). A collector that cannot attach is logged
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
                log.info("collector %s: %s (%s)%s", name, probe["label"], ", ".join(probe["hooks"]),
                         f"; structs from {probe['structs']}" if probe.get("structs") else "")
            except ToolError as e:
                if strict:
                    raise ToolError(f"collector {name}: {e}", "without --strict it would be "
                                    "left out and reported as bpf_exporter_collector_up 0") from e
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
          web_config: Optional[str] = None, self_cost: str = "sampled") -> None:
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
    readers: list = []
    cost = None
    try:
        # What every collector needs (privileges, tracefs, headers, bcc):
        # checked once, so its failure is one line, not one per collector.
        from .loader import prepare
        prepare()
        collectors, readers = load_collectors(names, stats, max_series, strict, modes, options)
        if not collectors:
            raise ToolError("no collector could attach", "run `pytools doctor` to see why")
        for c in collectors:
            registry.register(c)
        cost = SelfCost(lambda: program_costs_of(collectors), self_cost)
        # Said even without -v where it is not the default (sampled): off
        # for a reason, or exact because the node's sysctl taxes every
        # BPF program all the time.
        (log.warning if cost.problem or cost.how == "exact" else log.info)(
            "program cost: %s", cost.describe())
        registry.register(SelfCollector(stats, cost))
        registry.register(BuildInfoCollector(build_info()))
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
        if cost is not None:
            cost.close()
        # Detach the tools at once: each waits on the kernel, not the CPU.
        closers = [threading.Thread(target=reader.close) for reader in readers]
        for t in closers:
            t.start()
        for t in closers:
            t.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
