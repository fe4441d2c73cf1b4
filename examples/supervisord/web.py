"""The nginx-like web server of examples/supervisord: static files.

It listens on 127.0.0.1:$WEB_PORT (8080 when unset) and serves static/;
the access log goes to stderr, as http.server writes it.
"""

import functools
import http.server
import os

port = int(os.environ.get("WEB_PORT", "8080"))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="static")
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
print(f"web listening on 127.0.0.1:{port}", flush=True)
server.serve_forever()
