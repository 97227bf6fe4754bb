"""A TCP proxy to PostgreSQL that can go silent: a network or a proxy that stops passing bytes, where nothing is
refused and nothing answers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from tests.databases import POSTGRES_URL


@dataclass
class _Connection:
    """One client's connection through the proxy; ``lost`` once it sent or got bytes while the proxy was silent
    (see :class:`SilentProxy`)."""

    lost: bool = False


class SilentProxy:
    """A TCP proxy to PostgreSQL that stops passing bytes on while ``passing`` is clear.

    By default what it held passes on once ``passing`` is set again (a short freeze). With ``loses_held``, a
    connection that had bytes in flight while the proxy was silent stays silent for good, as one does after an
    outage that dropped its packets (its retransmissions backed off to minutes apart, or the route forgot it);
    connections that were idle through it, and new ones, pass again.

    With ``close_delay``, a side that hung up is hung up on the other side that many seconds after its last
    bytes passed: the server's last words (``terminating connection``) reach the client well before the end of
    the connection does, as through a proxy that is slow to close.
    """

    def __init__(self, *, loses_held: bool = False, close_delay: float = 0.0) -> None:
        self.passing = asyncio.Event()
        self.passing.set()
        self.loses_held = loses_held
        self.close_delay = close_delay
        self.refusing = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        upstream = urlsplit(POSTGRES_URL)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 5432)

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    def url_through(self, store_url: str) -> str:
        """``store_url`` (of the local PostgreSQL server) reached through the started proxy."""
        assert self._server is not None
        port = int(self._server.sockets[0].getsockname()[1])
        return urlunsplit(urlsplit(store_url)._replace(netloc=f"postgres@127.0.0.1:{port}"))

    def cut(self) -> None:
        """Drop every connection at once and refuse new ones until :meth:`mend` (the database's host gone)."""
        self.refusing = True
        for writer in list(self._writers):
            writer.transport.abort()

    def mend(self) -> None:
        self.refusing = False

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_out.transport.abort()
            return
        server_in, server_out = await asyncio.open_connection(*self._upstream)
        self._writers.update((client_out, server_out))
        connection = _Connection()
        for source, sink in ((client_in, server_out), (server_in, client_out)):
            pump = asyncio.ensure_future(self._pump(source, sink, connection))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, connection: _Connection) -> None:
        try:
            while data := await source.read(65536):
                if self.loses_held and not self.passing.is_set():
                    connection.lost = True
                if connection.lost:
                    continue  # (dropped)
                await self.passing.wait()
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            if self.close_delay:
                await asyncio.sleep(self.close_delay)
            sink.close()
            self._writers.discard(sink)

    async def close(self) -> None:
        for pump in list(self._pumps):
            pump.cancel()
        if self._server is not None:
            self._server.close()
