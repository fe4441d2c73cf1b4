"""A real master with the HTTP listener on, and a plain HTTP client for it."""

import http.client
import json
import os
import re
import socket

from tests.integration.harness import Master, wait_until


class HttpMaster(Master):
    """A master whose config turns http on (port 0: the info file says which)."""

    def start(self, wait=True, env=None):
        super().start(wait, env)
        info = wait_until(self._info, message="the http info file", dump=self.output)
        self.url, self.token = info["url"], info.get("token")
        return self

    def _info(self):
        try:
            with open(self.socket + ".http") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def request(self, method, path, body=None, headers=None, auth=True):
        headers = dict(headers or {})
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            return reply.status, dict(reply.getheaders()), reply.read()
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, value, headers=None, auth=True):
        headers = {"Content-Type": "application/json", **(headers or {})}
        return self.request("POST", path, json.dumps(value).encode(), headers, auth)

    def csrf(self):
        _status, _headers, page = self.get("/")
        return re.search(rb'name="corral-csrf" content="([^"]+)"', page)[1].decode()

    def raw(self, data, read=True):
        """Bytes to the port, and whatever comes back until the master closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(data)
            chunks = []
            while read:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)


class Events:
    """A server-sent event stream, read with deadlines."""

    def __init__(self, port, path, token, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split()[1])

    def _until(self, sep):
        while sep not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {self.buf[-300:]!r}")
            self.buf += chunk
        part, self.buf = self.buf.split(sep, 1)
        return part

    def next(self):
        """(event name, data) of the next event."""
        while True:
            block = self._until(b"\n\n").decode()
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if "event" in fields:
                return fields["event"], json.loads(fields["data"])

    def wait(self, check, what):
        while True:
            name, data = self.next()
            if check(name, data):
                return data

    def close(self):
        self.sock.close()


def http_config(services, extra=""):
    return f'[corral]\nhttp = "127.0.0.1:0"\n{extra}\n{services}'
