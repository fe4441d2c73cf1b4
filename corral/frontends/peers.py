"""Who is on the other end of a unix socket: the one check of every frontend.

The control socket, the dashboard's unix listener and the XML-RPC unix
socket all admit the master's own uid and root only (SO_PEERCRED: the
kernel's word, not the client's), on top of the 0600 mode of the socket
file, which a chmod or a shared folder could undo.
"""

import os
import socket
import struct

_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock):
    """The uid of the process that connected to the unix socket sock."""
    _pid, uid, _gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    return uid


def allowed(writer):
    """True for a peer with the master's uid or root, and for any TCP peer
    (TCP frontends authenticate by token or password instead)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    if sock.family != socket.AF_UNIX:
        return True
    try:
        return peer_uid(sock) in (0, os.getuid())
    except OSError:
        return False
