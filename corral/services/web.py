"""A static file server, and the `web` plugin: `corral run web --port 8080 --path .`

Like `twistd web --path DIR`: HTTP/1.0 and 1.1 GET and HEAD, one request per
connection (Connection: close). A file is sent with its Content-Length and a
Content-Type guessed from its name; a folder gets its index.html, else a
listing (without its trailing slash, a redirect to it, so relative links
work). A path that leads out of the root, by `..` or through a symlink, gets
403; a missing one 404. Standard library only.
"""

import argparse
import asyncio
import email.utils
import functools
import html
import mimetypes
import os
import urllib.parse

from corral.plugins import Plugin
from corral.service import Service

CHUNK = 64 * 1024
HEAD_LIMIT = 16 * 1024  # bytes of request line and headers
HEAD_TIMEOUT = 10.0  # s for a client to send them
REASONS = {200: "OK", 301: "Moved Permanently", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           505: "HTTP Version Not Supported"}


class WebService(Service):
    """Serve the files under path on interface:port."""

    def __init__(self, path=".", port=8080, interface="127.0.0.1"):
        super().__init__()
        self.path = os.path.abspath(path)
        self.port = port
        self.interface = interface
        self.server = None
        self._tasks = set()  # connections being served, cancelled on stop

    async def startService(self):
        super().startService()
        self.root = os.path.realpath(self.path)
        self.server = await asyncio.start_server(self._serve, self.interface, self.port,
                                                 limit=HEAD_LIMIT)
        host, port = self.server.sockets[0].getsockname()[:2]
        print(f"serving {self.root} on http://{host}:{port}/", flush=True)

    async def stopService(self):
        super().stopService()
        if self.server is not None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            await self.server.wait_closed()

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._respond(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or we are stopping
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _respond(self, reader, writer):
        peer = (writer.get_extra_info("peername") or ("-",))[0]
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except TimeoutError:
            return await self._send(writer, peer, "-", 408)
        except asyncio.IncompleteReadError:
            return  # closed before a whole request
        except asyncio.LimitOverrunError:
            return await self._send(writer, peer, "-", 400)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return await self._send(writer, peer, line, 400)
        method, target, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            return await self._send(writer, peer, line, 505)
        if method not in ("GET", "HEAD"):
            return await self._send(writer, peer, line, 405, {"Allow": "GET, HEAD"})
        raw = urllib.parse.urlsplit(target).path
        path = os.fsdecode(urllib.parse.unquote_to_bytes(raw))
        if not raw.startswith("/") or "\0" in path:
            return await self._send(writer, peer, line, 400)
        head_only = method == "HEAD"
        send = functools.partial(self._send, writer, peer, line, head_only=head_only)
        found = self._inside(os.path.join(self.root, path.lstrip("/")))
        if found is not None and os.path.isdir(found):
            if not raw.endswith("/"):
                return await send(301, {"Location": raw + "/"})
            index = os.path.join(found, "index.html")
            if not os.path.isfile(index):
                body = _listing(path, found).encode("utf-8")
                return await send(200, body=body, ctype="text/html; charset=utf-8")
            found = self._inside(index)
        if found is None:
            return await send(403)
        if not os.path.lexists(found):
            return await send(404)
        if not os.path.isfile(found):  # a fifo or a device: never opened
            return await send(403)
        try:
            file = open(found, "rb")  # noqa: SIM115, ASYNC230 (local files, read in chunks)
        except OSError:
            return await send(403)
        with file:
            stat = os.fstat(file.fileno())
            ctype = mimetypes.guess_type(found)[0] or "application/octet-stream"
            extra = {"Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True)}
            await send(200, extra, ctype=ctype, length=stat.st_size)
            left = 0 if head_only else stat.st_size
            while left > 0:
                chunk = file.read(min(CHUNK, left))
                if not chunk:
                    break  # the file shrank: the client sees a short body
                left -= len(chunk)
                writer.write(chunk)
                await writer.drain()

    def _inside(self, path):
        """path with every symlink resolved, or None if that is outside the root."""
        real = os.path.realpath(path)
        prefix = self.root.rstrip(os.sep) + os.sep
        return real if real == self.root or real.startswith(prefix) else None

    async def _send(self, writer, peer, line, status, extra=None, body=None,
                    ctype="text/plain; charset=utf-8", length=None, head_only=False):
        """Send the status line, headers, and body (given length: the caller sends it)."""
        reason = REASONS[status]
        if body is None and length is None:
            body = f"{status} {reason}\n".encode()
        if length is None:
            length = len(body)
        headers = {"Date": email.utils.formatdate(usegmt=True), "Server": "corral",
                   "Content-Type": ctype, "Content-Length": str(length),
                   "Connection": "close", **(extra or {})}
        text = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{key}: {value}\r\n" for key, value in headers.items()) + "\r\n"
        writer.write(text.encode("latin-1"))
        if body is not None and not head_only:
            writer.write(body)
        await writer.drain()
        print(f'{peer} "{line}" {status} {length}', flush=True)


def _listing(path, folder):
    rows = []
    for name in sorted(os.listdir(folder)):
        slash = "/" if os.path.isdir(os.path.join(folder, name)) else ""
        href = urllib.parse.quote(name + slash)
        rows.append(f'<li><a href="{href}">{html.escape(name + slash)}</a></li>')
    title = html.escape(f"Index of {path}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"</head>\n<body><h1>{title}</h1>\n<ul>\n" + "\n".join(rows) + "\n</ul></body></html>\n")


# -- the plugin ------------------------------------------------------------------------


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535: {text!r}")
    return value


def _folder(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a folder: {text!r}")
    return os.path.abspath(text)


def make_service(options):
    return WebService(options.path, options.port, options.interface)


plugin = Plugin(
    name="web",
    description="A static file server (like twistd web --path): GET and HEAD of the files under --path.",
    options=[
        (("-p", "--port"), {"type": _port, "default": 8080, "help": "the TCP port to listen on (8080)"}),
        ("--path", {"type": _folder, "default": ".", "metavar": "DIR",
                    "help": "the folder to serve (the current folder)"}),
        ("--interface", {"default": "127.0.0.1", "metavar": "ADDR",
                         "help": "the address to listen on (127.0.0.1)"}),
    ],
    make_service=make_service,
)
