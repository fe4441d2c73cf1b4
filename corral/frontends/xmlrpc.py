"""supervisord's XML-RPC interface, for supervisorctl and the tools built on it.

supervisorctl, Ansible's and Salt's modules, the Prometheus exporters and
web UIs such as cesi drive supervisord through `supervisor.*` and
`system.*` XML-RPC (a POST to /RPC2) and read `tail -f` as a chunked GET
of /logtail/NAME/stdout|stderr or /mainlogtail. This frontend answers them
on the master's loop: xmlrpc_http.py serves HTTP (bounded, never
blocking), xmlrpc_methods.py holds the methods over api.Operations, and
xmlrpc_structs.py renders supervisord's structures (docs/xmlrpc.md).
Marshalling is the standard library's xmlrpc.client loads/dumps.

A TCP address beyond loopback needs a password (check_access): anyone who
reaches it could run every verb.
"""

import ipaddress
import os
import xmlrpc.client

from corral.errors import CorralError
from corral.frontends import xmlrpc_http as http
from corral.frontends.httpwire import HttpError
from corral.frontends.xmlrpc_logs import main_line
from corral.frontends.xmlrpc_methods import XMLRPCInterface
from corral.frontends.xmlrpc_structs import Faults, RPCError

FOLLOW_BUFFER = 1 << 20  # bytes queued to one tail -f before lines are skipped
TAIL_HEAD = 1024  # bytes of history a tail -f begins with, as supervisord's


class XMLRPCHandler:
    """HTTP requests -> the interface: POST /RPC2, GET /logtail/..., /mainlogtail."""

    def __init__(self, ops, log):
        self.ops, self.log = ops, log
        self.rpc = XMLRPCInterface(ops)

    async def __call__(self, request, reader, writer):
        path = request.path
        if path == "/RPC2":
            if request.method != "POST":
                raise HttpError(405, "XML-RPC is a POST to /RPC2")
            return http.response(200, await self.xmlrpc(request.body), "text/xml",
                                 keep_alive=request.keep_alive)
        if path.startswith("/logtail/") or path == "/mainlogtail":
            if request.method != "GET":
                raise HttpError(405, "a log tail is a GET")
            return await self.tail(path, reader, writer)
        raise HttpError(404, "no such path: /RPC2, /logtail/NAME/stdout|stderr, /mainlogtail")

    async def xmlrpc(self, body):
        """The response body of one call: a value or a fault, or 400."""
        try:
            params, method = xmlrpc.client.loads(body)
        except Exception:  # malformed XML, or values the marshaller refuses
            raise HttpError(400, "malformed XML-RPC request") from None
        if not method:
            raise HttpError(400, "an XML-RPC request without a methodName")
        try:
            value = await self.rpc.call(method, params or ())
            reply = xmlrpc.client.dumps((value,), methodresponse=True)
        except RPCError as err:
            reply = xmlrpc.client.dumps(xmlrpc.client.Fault(err.code, err.text))
        except OverflowError as exc:  # an int beyond XML-RPC's 32 bits
            reply = xmlrpc.client.dumps(xmlrpc.client.Fault(Faults.FAILED, f"FAILED: {exc}"))
        return reply.encode("utf-8", "replace")

    async def tail(self, path, reader, writer):
        """A chunked stream: the last TAIL_HEAD bytes, then every new line,
        until the client leaves; a client that does not read is skipped ahead."""
        if path == "/mainlogtail":
            name, stream = None, None
        else:
            namespec, _, channel = path[len("/logtail/"):].partition("/")  # unquoted by httpwire
            stream = {"": "out", "stdout": "out", "stderr": "err"}.get(channel)
            try:
                name = self.rpc.find(namespec).name if stream else None
            except RPCError:
                name = None
            if name is None:
                raise HttpError(404, f"no such process or channel: {namespec}/{channel}")
        head = self.rpc.logs.log_bytes(name, stream)[-TAIL_HEAD:]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain;charset=utf-8\r\n"
                     b"Transfer-Encoding: chunked\r\nX-Accel-Buffering: no\r\n"
                     b"Connection: close\r\n\r\n" + http.chunk(head))
        transport = writer.transport
        subscription = None

        def send(batch):
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > FOLLOW_BUFFER:
                subscription.drop(len(batch))
                return
            if name is None:
                text = "".join(main_line(line) for line in batch)
            else:
                text = "".join(line["line"] + "\n" for line in batch if line["stream"] == stream)
            writer.write(http.chunk(text.encode("utf-8", "replace")))

        subscription = self.ops.subscribe("logs", send, name)
        try:
            while await reader.read(65536):
                pass  # nothing more is expected; EOF ends the stream
        finally:
            subscription.close()
        return None


def check_access(addresses, username, password):
    """Refuse what would let others in: a TCP address beyond loopback
    without a password, or half of the basic auth pair."""
    if (username is None) != (password is None):
        raise CorralError("[corral] xmlrpc_username and xmlrpc_password go together: set both")
    for address in addresses:
        if address.startswith("tcp://") and password is None:
            host = address[len("tcp://"):].rpartition(":")[0].strip("[]")
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise CorralError(
                    f"[corral] xmlrpc: {address} is not a loopback address; anyone who "
                    "reaches it could control every process: set xmlrpc_username and "
                    "xmlrpc_password, or listen on 127.0.0.1")


class XMLRPCServer:
    """The frontend: listens on each (address, username, password) of
    listeners, each address with its own basic auth pair (or none)."""

    def __init__(self, ops, listeners, log):
        for address, username, password in listeners:
            check_access((address,), username, password)
        self.ops, self.listeners, self.log = ops, tuple(listeners), log
        self.http = http.HTTPServer(XMLRPCHandler(ops, log), log)
        self.paths = []

    async def start(self):
        from corral.frontends.control import bind_socket

        for address, username, password in self.listeners:
            if address.startswith("unix://"):
                path = address[len("unix://"):]
                await self.http.listen_unix(bind_socket(path), username, password)
                self.paths.append(path)
            else:
                host, _, port = address[len("tcp://"):].rpartition(":")
                await self.http.listen_tcp(host.strip("[]") or None, int(port), username,
                                           password)

    def hand_over(self, uid, gid):
        """Give the unix sockets to the uid the master becomes (as the
        control socket is), so that its peer check still admits its user."""
        for path in self.paths:
            try:
                os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
            except OSError as exc:
                raise CorralError(f"cannot hand the xmlrpc socket {path} to uid {uid}: "
                                  f"{exc.strerror}") from None

    async def close(self):
        await self.http.close()
        for path in self.paths:
            try:
                os.unlink(path)
            except OSError:
                pass
