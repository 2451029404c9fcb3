"""Serves Neutron's API (neutron.wsgi.api:application) for the tests.

Neutron 29 has no neutron-server command: the API is a WSGI application.
This serves it with the standard library's wsgiref, one thread per request,
HTTP/1.0 (each response closes its connection, so the CLI's clients never
reuse a connection the server has dropped). The configuration comes from
OS_NEUTRON_CONFIG_DIR / OS_NEUTRON_CONFIG_FILES.

usage: serve.py HOST PORT_FILE  (binds an ephemeral port, writes it there)
"""

import socketserver
import sys
from wsgiref import simple_server


class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(simple_server.WSGIRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write('api: %s\n' % (fmt % args))


def main():
    host, port_file = sys.argv[1], sys.argv[2]
    del sys.argv[1:]  # Neutron parses sys.argv as its own options
    from neutron.wsgi import api  # boots the plugins (reads the config)

    server = simple_server.make_server(host, 0, api.application,
                                       server_class=Server,
                                       handler_class=Handler)
    with open(port_file + '.tmp', 'w') as f:
        f.write(str(server.server_port))
    import os
    os.rename(port_file + '.tmp', port_file)
    sys.stderr.write('api: serving on %s:%d\n' % (host, server.server_port))
    server.serve_forever()


if __name__ == '__main__':
    main()
