# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Flask application of carrier-redfish: authentication before every request, Redfish error
bodies for every refusal, the OData headers, and :func:`main` (served by cheroot, TLS built in).

Flask and cheroot are imported here only; importing the rest of the package needs neither.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import traceback

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._redfish import resources
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.config import read_config_file
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.errors import RedfishError
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.service import Service

ROOT = resources.ROOT
PUBLIC = {"/redfish", "/redfish/", ROOT, ROOT + "/", ROOT + "/odata", ROOT + "/$metadata"}
SESSIONS = ROOT + "/SessionService/Sessions"


def _flask():
    try:
        import flask
    except ImportError:
        raise CarrierError("carrier-redfish needs the Python package flask (pip install flask; "
                           "Debian: python3-flask)") from None
    return flask


def reply(body, status=200, headers=None):
    """A JSON response with the headers every Redfish response carries."""
    flask = _flask()
    response = flask.Response(json.dumps(body, indent=1, sort_keys=True) if body is not None else "", status=status)
    if body is not None:
        response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.headers["OData-Version"] = "4.0"
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_reply(exc):
    return reply(exc.body(), exc.status, exc.headers)


def json_body(request):
    """The request's JSON object; MalformedJSON (400) when it is not one."""
    data = request.get_data(cache=True)
    if not data.strip():
        return {}
    try:
        body = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise RedfishError("MalformedJSON") from None
    if not isinstance(body, dict):
        raise RedfishError("MalformedJSON", detail="the request body is JSON but not an object")
    return body


def _authorize(service, request, flask):
    """Who asks, and whether their role may: GET needs a login, a change ConfigureComponents or more."""
    path = request.path
    if path in PUBLIC or (request.method == "POST" and path.rstrip("/") == SESSIONS):
        flask.g.caller = None
        return
    caller = service.caller(request.headers)
    flask.g.caller = caller
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.method == "DELETE" and path.rstrip("/").startswith(SESSIONS + "/"):
        own = path.rstrip("/").rsplit("/", 1)[1] == caller.session_id
        if own or caller.can("ConfigureManager"):
            return
    elif caller.can("ConfigureComponents"):
        return
    raise RedfishError("InsufficientPrivilege", detail="%s (role %s) may not %s %s"
                       % (caller.user, caller.role, request.method, path))


def create_app(config, bus_opener=None, sleep=None, task_threshold=2.0):
    """The Flask app over ``config`` (from :func:`config.load_config`)."""
    flask = _flask()
    from ansible_collections.picluster.carrier.plugins.module_utils._redfish import routes

    options = {} if sleep is None else {"sleep": sleep}
    service = Service(config, bus_opener=bus_opener, task_threshold=task_threshold, **options)
    app = flask.Flask("carrier_redfish", static_folder=None)
    app.url_map.strict_slashes = False
    app.config["SERVICE"] = service

    @app.before_request
    def authorize():
        _authorize(service, flask.request, flask)

    @app.errorhandler(RedfishError)
    def redfish_error(exc):
        return error_reply(exc)

    @app.errorhandler(404)
    def not_found(_exc):
        return error_reply(RedfishError("ResourceMissingAtURI", flask.request.path))

    @app.errorhandler(405)
    def not_allowed(exc):
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
        return error_reply(RedfishError("OperationNotAllowed", headers={"Allow": allowed},
                                        detail="%s is not allowed on %s (allowed: %s)"
                                        % (flask.request.method, flask.request.path, allowed)))

    @app.errorhandler(CarrierError)
    def carrier_error(exc):
        return error_reply(RedfishError("OperationFailed", detail=str(exc)))

    @app.errorhandler(Exception)
    def internal(exc):
        code = getattr(exc, "code", None)
        if isinstance(code, int) and 400 <= code < 500:  # werkzeug's HTTP errors (413, 415 ...)
            return error_reply(RedfishError("GeneralError", status=code, detail=getattr(exc, "description", None)))
        traceback.print_exc()
        return error_reply(RedfishError("InternalError"))

    routes.register(app, service)
    return app


def make_server(app, config):
    """A cheroot WSGI server for ``app`` on the configured address, with TLS when a certificate is given."""
    try:
        from cheroot import wsgi
    except ImportError:
        raise CarrierError("carrier-redfish needs the Python package cheroot (pip install cheroot; "
                           "Debian: python3-cheroot)") from None
    # cheroot's defaults (a listen queue of 5, 10 idle keep-alive connections) drop and re-open connections
    # under a fleet engine's many clients: over TLS the queue overflowed with 100 clients and requests waited
    # seconds for TCP retries (bench/bench_redfish.py). A queue of 128 and 128 kept connections hold them.
    server = wsgi.Server((config["listen"], config["port"]), app, numthreads=16, server_name="carrier-redfish",
                         request_queue_size=128)
    server.keep_alive_conn_limit = 128
    if config["tls_cert"]:
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        try:
            server.ssl_adapter = BuiltinSSLAdapter(config["tls_cert"], config["tls_key"])
        except (OSError, ValueError) as exc:
            raise CarrierError("tls_cert, tls_key: %s, %s: cannot be loaded: %s"
                               % (config["tls_cert"], config["tls_key"], exc)) from None
    return server


def main(argv=None):
    """``carrier-redfish --config FILE [--check]``: serve until stopped (0), or say why not (1)."""
    parser = argparse.ArgumentParser(prog="carrier-redfish", description="DMTF Redfish service of carrier boards")
    parser.add_argument("--config", required=True, help="the JSON configuration (the role's redfish.json)")
    parser.add_argument("--check", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)
    try:
        config = read_config_file(args.config)
        app = create_app(config)
        if args.check:
            sys.stdout.write("carrier-redfish: %s: %d board(s), %d system(s) OK\n"
                             % (args.config, len(config["boards"]), len(app.config["SERVICE"].nodes.systems)))
            return 0
        server = make_server(app, config)
        server.prepare()
    except CarrierError as exc:
        parser.exit(1, "carrier-redfish: %s\n" % exc)
    except OSError as exc:
        parser.exit(1, "carrier-redfish: cannot listen on %s:%s: %s\n" % (config["listen"], config["port"], exc))
    # cheroot's stop() waits for the serving loop: serve on a thread, stop from the main one on SIGTERM.
    # The handler is in place before "serving" is printed: a supervisor may stop us the moment it reads it.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    host, port = server.bind_addr[:2]
    sys.stdout.write("carrier-redfish: serving %s://%s:%d\n" % ("https" if config["tls_cert"] else "http", host, port))
    sys.stdout.flush()
    thread = threading.Thread(target=server.serve, name="carrier-redfish", daemon=True)
    thread.start()
    try:
        while thread.is_alive() and not stopping.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    thread.join(10)
    return 0
