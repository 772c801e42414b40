"""Serve Keystone or Neutron's WSGI application on 127.0.0.1:PORT (run by the lab's own venv python).

Usage: python openstack_serve.py keystone|neutron PORT. Configuration comes from the environment
(OS_KEYSTONE_CONFIG_FILES, OS_NEUTRON_CONFIG_DIR/FILES). Prints READY once listening.
"""

import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    # Both services parse sys.argv with oslo.config: leave them only the program name.
    sys.argv = sys.argv[:1]
    if kind == "keystone":
        from keystone.server.wsgi import initialize_public_application

        app = initialize_public_application()
    else:
        from neutron.wsgi.api import application as app
    server = make_server("127.0.0.1", port, app, server_class=ThreadingServer, handler_class=QuietHandler)
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
