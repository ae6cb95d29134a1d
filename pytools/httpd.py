"""The exporter's HTTP/1.1 server, on the standard library's asyncio streams.

Why not http.server's ThreadingHTTPServer (what this replaced, and what
prometheus_client's start_http_server uses): it gives each connection a
thread and never times out a request that is only half sent, so ~1,000 idle
connections took the exporter to its file limit, and every scrape after that
timed out. Here an idle connection costs one file descriptor and a
coroutine, never a thread, and:

- each request must arrive whole within `read_timeout` (a deadline for the
  whole head, not per byte, so a slow drip does not keep it open); a
  keep-alive connection idle that long is closed too;
- at most `max_connections` are open, counted from accept (a TLS handshake
  in progress counts): a new one beyond that closes the oldest connection
  still waiting for its request (never one being served), or is refused at
  once if all are busy, so a flood cannot starve scrapers;
- an answer must be taken within twice `read_timeout`, and a closing
  connection flushes for at most `read_timeout` before its socket is
  dropped: a peer that never reads holds no descriptor past the timeouts,
  and a connection counts against the bound until its socket is gone;
- a request waiting on something that may be refused anyway (a password
  check: `Request.evictable`) may be closed to make room, as an idle one;
- a request head over 16 KiB gets 431; a malformed one 400;
- GET and HEAD; any other method gets 405 with `Allow: GET, HEAD`;
- /metrics is rendered in a worker thread, one render at a time, and
  concurrent scrapes share a render that started after they arrived, so
  every answer is fresh and 50 scrapers cost about one.

Routing and bodies are the caller's: `route(method, path, headers)` returns
a Response or a coroutine function's result. Pure parsing and rendering
(pytools.http_messages) is unit-tested; the server itself is tested over
loopback (tests/kernel/test_exporter_*).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Dict, List, Optional, Tuple

from .http_messages import (ALLOWED, MAX_HEAD, BadRequest, Request, Response, parse_head, plain,
                            render_response)

log = logging.getLogger("bpf-exporter")

# ------------------------------------------------------------ fresh renders

class FreshRenders:
    """Run a blocking render in one worker thread; callers that arrive while
    one is running share the next one, which starts after they arrived."""

    def __init__(self, pool: concurrent.futures.Executor):
        self.pool = pool
        self.started: Dict[str, int] = {}
        self.tasks: Dict[str, asyncio.Future] = {}

    async def get(self, key: str, render: Callable[[], bytes]) -> bytes:
        ticket = self.started.get(key, 0) + 1
        loop = asyncio.get_running_loop()
        while True:
            task = self.tasks.get(key)
            if task is not None and self.started[key] >= ticket:
                return await asyncio.shield(task)     # began after this request
            if task is None or task.done():
                self.started[key] = self.started.get(key, 0) + 1
                self.tasks[key] = loop.run_in_executor(self.pool, render)
                continue
            await asyncio.wait([task])    # began before this request: wait it out


# ------------------------------------------------------------------ server

Route = Callable[[Request, FreshRenders], Awaitable[Response]]


@dataclass
class Limits:
    read_timeout: float = 5.0       # a request head must arrive whole within this
    max_connections: int = 512


class Connection:
    """One accepted connection, counted from accept (a TLS handshake in
    progress counts against max_connections too)."""
    __slots__ = ("task", "writer", "since", "busy")

    def __init__(self):
        self.task: Optional[asyncio.Task] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.since = time.monotonic()
        self.busy = False

    def evictable(self, yes: bool) -> None:
        self.busy = not yes

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        elif self.task is not None:
            self.task.cancel()          # in its handshake: the transport closes


# Accept errors that mean "no descriptor or memory now": make room and retry.
OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class HttpServer:
    """Serves `route` on already-bound listening sockets from a thread of
    its own: start(), then stop() from any thread.

    Connections are accepted one at a time by a loop of its own rather than
    asyncio's server, whose accept takes up to a backlog's worth of
    connections at once before any evicted one's descriptor is closed, and
    on EMFILE stops accepting for a second: a burst of idle connections then
    kept the next scrape's connection waiting in the kernel for seconds.
    Here a connection over the limit first closes the oldest idle one, its
    descriptor freed before the next accept."""

    def __init__(self, sockets: List[socket.socket], route: Route, limits: Limits,
                 tls: Callable[[], Optional[ssl.SSLContext]] = lambda: None,
                 headers: Callable[[], Dict[str, str]] = dict):
        self.sockets = sockets
        self.route = route
        self.limits = limits
        self.tls = tls              # the TLS context for each new connection (None: HTTP)
        self.headers = headers      # added to every response, refusals included
        self.open: Dict[int, Connection] = {}
        self.tasks: set = set()     # every connection's, evicted ones closing included
        self.refused = 0
        self.evicted = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="render")
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._stopped: Optional[asyncio.Event] = None
        self._out_of_files_logged = 0.0

    @property
    def address(self) -> Tuple:
        return self.sockets[0].getsockname()

    # -- life cycle
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="http", daemon=True)
        self.thread.start()
        self._ready.wait()

    def stop(self, timeout: float = 5) -> None:
        if self.loop is not None and self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set)
        if self.thread is not None:
            self.thread.join(timeout)
        self.pool.shutdown(wait=False)
        for sock in self.sockets:
            sock.close()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_log_one_line)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        self.renders = FreshRenders(self.pool)
        loop = asyncio.get_running_loop()
        listeners, accepting = [], []
        try:
            for sock in self.sockets:
                listener = sock.dup()       # closing it closes the duplicate only
                listener.setblocking(False)
                listeners.append(listener)
                accepting.append(loop.create_task(self._accept(listener)))
        finally:
            self._ready.set()
        await self._stopped.wait()
        for task in accepting:
            task.cancel()
        await asyncio.gather(*accepting, return_exceptions=True)
        for listener in listeners:
            listener.close()
        for conn in list(self.open.values()):
            conn.abort()
        # Every connection's task ends on this loop, not in a closed one.
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=self.limits.read_timeout)

    # -- connections
    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if len(self.open) >= self.limits.max_connections and not self._make_room():
                # Every open connection is being served: refuse at once.
                try:
                    client, _ = await loop.sock_accept(listener)
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
                self.refused += 1
                client.close()
                continue
            try:
                client, _ = await loop.sock_accept(listener)
            except OSError as e:
                if e.errno not in OUT_OF_FILES:
                    raise
                self._log_out_of_files(e)
                if not self._make_room():
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0)          # let the evicted one close
                continue
            conn = Connection()
            self.open[id(conn)] = conn
            conn.task = loop.create_task(self._connection(client, conn))
            self.tasks.add(conn.task)
            conn.task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(0)      # closes of evicted connections run first

    def _make_room(self) -> bool:
        """Close the oldest connection waiting for a request; False if
        every open one is being served."""
        idle = [c for c in self.open.values() if not c.busy]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.since)
        self.open.pop(id(oldest), None)
        oldest.abort()
        self.evicted += 1
        return True

    def _log_out_of_files(self, e: OSError) -> None:
        now = time.monotonic()
        if now - self._out_of_files_logged >= 60:   # once a minute at most
            self._out_of_files_logged = now
            log.warning("accepting connections: %s (%d open); closing the oldest idle "
                        "ones to make room", os.strerror(e.errno) if e.errno else e,
                        len(self.open))

    async def _connection(self, client: socket.socket, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            reader = asyncio.StreamReader(limit=MAX_HEAD, loop=loop)
            protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
            context = self.tls()
            try:
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol, client, ssl=context,
                    ssl_handshake_timeout=self.limits.read_timeout if context else None)
            except Exception:       # a refused handshake, a peer gone: nothing to say
                client.close()
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            conn.writer = writer
            try:
                await self._requests(reader, writer, conn)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                    OSError):
                pass
            finally:
                conn.busy = False       # closing: the first to go to make room
                await self._close(writer)
        finally:
            self.open.pop(id(conn), None)

    async def _close(self, writer) -> None:
        """Close, flushing what is left for at most read_timeout; then
        abort: a peer that never reads must not hold the descriptor (a
        plain close waits for the send buffer to drain, forever). The
        connection counts against max_connections until it is gone."""
        transport = writer.transport
        if not transport.is_closing():
            writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), self.limits.read_timeout)
        except (asyncio.TimeoutError, ConnectionError, OSError, ssl.SSLError):
            transport.abort()           # harmless if it closed meanwhile

    async def _requests(self, reader, writer, conn: Connection) -> None:
        timeout = self.limits.read_timeout
        while True:
            conn.busy, conn.since = False, time.monotonic()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            except asyncio.LimitOverrunError:
                await self._send(writer, plain(431, "request head over 16 KiB"), False, False)
                return
            except asyncio.IncompleteReadError as e:
                if e.partial.strip():
                    await self._send(writer, plain(400, "incomplete request"), False, False)
                return
            conn.busy = True
            try:
                request = parse_head(head)
            except BadRequest as e:
                await self._send(writer, plain(400, str(e)), False, False)
                return
            request.evictable = conn.evictable
            keep_alive = request.keep_alive and not request.has_body
            if request.method not in ALLOWED:
                response = plain(405, f"{request.method} not allowed: use GET",
                                 Allow=", ".join(ALLOWED))
                keep_alive = False
            else:
                try:
                    response = await self.route(request, self.renders)
                except Exception as e:   # a bug in a collector: one line, a 500
                    log.error("%s %s failed: %s: %s", request.method, request.path,
                              type(e).__name__, e)
                    response = plain(500, "internal error; see the exporter's log")
            conn.busy = True
            keep_alive = keep_alive and not response.close
            await self._send(writer, response, request.method == "HEAD", keep_alive)
            if not keep_alive:
                return

    async def _send(self, writer, response: Response, head_only: bool, keep_alive: bool) -> None:
        extra = self.headers()
        if extra:
            response.headers = {**extra, **response.headers}
        writer.write(render_response(response, head_only, keep_alive))
        await asyncio.wait_for(writer.drain(), self.limits.read_timeout * 2)


def _log_one_line(loop, context) -> None:
    exc = context.get("exception")
    log.warning("http: %s%s", context.get("message", ""),
                f": {type(exc).__name__}: {exc}" if exc else "")
