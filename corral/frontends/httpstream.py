"""Server-sent event streams for the dashboard: moves and usage, log lines.

Invariant: a stream costs the master a bounded buffer and bounded work per
batch, whatever the browser does. Each batch from ops.subscribe is written
without waiting: the items that fit in STREAM_BUFFER are encoded (no more:
a log Batch makes a dict only for the lines taken), the rest are counted
with subscription.drop() and the page gets a `dropped` event as soon as it
has room again. A stream whose buffer stays full for STUCK_AFTER s is cut,
with a line in the master's log. The usage event (cpu, rss, uptime of every
instance) is made once per TICK for all open dashboards.

    /api/events       hello {rows}, then move {event, row}, usage {name: [cpu, rss, uptime]}
    /api/logs/stream  history [lines], then line {line}, and dropped {count}
"""

import asyncio
import dataclasses

from corral.errors import ControlError
from corral.frontends.httpwire import response, sse

STREAM_BUFFER = 256 * 1024  # bytes queued to one stream before items are skipped
STUCK_AFTER = 30.0  # s with a full buffer before the stream is cut
TICK = 2.0  # s between usage events; also how often a full stream is looked at
HISTORY_BYTES = 64 * 1024  # of log text a log view starts with


def row(status):
    return {**dataclasses.asdict(status), "description": status.description}


class Stream:
    """One event-stream response, written without waiting."""

    def __init__(self, writer, log):
        self.writer, self.log = writer, log
        self.transport = writer.transport
        self.subscription = None
        self.dropped = 0
        self.full_since = None

    def room(self):
        return STREAM_BUFFER - self.transport.get_write_buffer_size()

    def offer(self, items, encode):
        """Write what fits of items (one at least while any room is left);
        count the rest as dropped."""
        if self.transport.is_closing():
            return
        room = self.room()
        if self.dropped and room > 0:
            self.tell_dropped()
            room = self.room()
        chunks = []
        for item in items if room > 0 else ():
            chunks.append(encode(item))
            room -= len(chunks[-1])
            if room <= 0:
                break
        self.writer.write(b"".join(chunks))
        skipped = len(items) - len(chunks)
        if skipped:
            self.dropped += skipped
            self.subscription.drop(skipped)

    def tell_dropped(self):
        if self.dropped and self.room() > 0:
            self.writer.write(sse("dropped", {"count": self.dropped}))
            self.dropped = 0

    def look(self, loop):
        """Each TICK: tell drops; cut the stream if it has been full too long."""
        if self.room() > 0:
            self.full_since = None
            self.tell_dropped()
            return True
        now = loop.time()
        self.full_since = self.full_since or now
        if now - self.full_since < STUCK_AFTER:
            return False
        peer = self.writer.get_extra_info("peername") or "a unix peer"
        self.log(f"http: dropped a stuck event stream ({peer}): it read nothing for "
                 f"{STUCK_AFTER:g} s")
        self.transport.abort()
        return False


async def _run(stream, reader, tick):
    """Call tick() every TICK s until the client goes away."""
    loop = asyncio.get_running_loop()

    async def ticking():
        while not stream.transport.is_closing():
            await asyncio.sleep(TICK)
            if stream.look(loop):
                tick()

    ticker = loop.create_task(ticking())
    try:
        while not stream.transport.is_closing() and await reader.read(65536):
            pass  # whatever the client sends now is ignored; EOF ends the stream
    finally:
        ticker.cancel()
        if stream.subscription is not None:
            stream.subscription.close()


def _start(writer):
    writer.write(response(200, b"", "text/event-stream; charset=utf-8",
                          headers=[("X-Accel-Buffering", "no")], length=False))
    writer.write(b"retry: 2000\n\n")  # the browser reconnects after 2 s


async def follow_events(server, request, reader, writer):
    ops = server.ops
    stream = Stream(writer, server.log)
    _start(writer)
    writer.write(sse("hello", {"rows": [row(s) for s in ops.status()]}))

    def encode(item):
        try:
            found = ops.status([item["name"]], usage=False)
        except ControlError:  # gone with a reload
            found = []
        return sse("move", {"event": item, "row": row(found[0]) if found else None})

    stream.subscription = ops.subscribe("events", lambda items: stream.offer(items, encode))

    def tick():
        if stream.room() > 0:
            writer.write(_usage_event(server))

    await _run(stream, reader, tick)


def _usage_event(server):
    """One usage event for every dashboard open in the same TICK."""
    loop = asyncio.get_running_loop()
    cached = getattr(server, "_usage_event", None)
    if cached is not None and loop.time() - cached[0] < TICK / 2:
        return cached[1]
    data = {s.name: [s.cpu_percent, s.rss, s.uptime, s.restarts] for s in server.ops.status()}
    event = sse("usage", data)
    server._usage_event = (loop.time(), event)
    return event


async def follow_logs(server, name, lines, reader, writer):
    ops = server.ops
    stream = Stream(writer, server.log)
    history = ops.logs(name, lines, max_bytes=HISTORY_BYTES)  # raises no_such_service first
    subscription_name = name
    _start(writer)
    writer.write(sse("history", history))
    stream.subscription = ops.subscribe(
        "logs", lambda batch: stream.offer(batch, lambda item: sse("line", item)),
        subscription_name)
    await _run(stream, reader, lambda: None)
