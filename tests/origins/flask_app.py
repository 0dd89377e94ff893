"""Flask as an origin for tests/differential.rs and tests/streams.rs, served by Werkzeug's own
threaded server, configured the plain way: a route for the checkout and one for everything
below it, the VIP presale bound to its host name with Flask's host matching, a catch-all for the
rest, and `/feed?gap=SECONDS`, a Server-Sent Events stream with `gap` seconds between its two
events. Binds 127.0.0.1 port 0 and prints `PORT <n>` on stdout once it listens."""

import sys
import time

from flask import Flask, Response, request
from werkzeug.serving import make_server

ANY = "<anyhost>"
app = Flask(__name__, static_folder=None, host_matching=True)


@app.after_request
def mark(response):
    response.headers["X-Origin"] = "flask"
    return response


@app.route("/checkout", host=ANY, methods=["GET", "POST"])
@app.route("/checkout/<path:rest>", host=ANY, methods=["GET", "POST"])
def checkout(anyhost, rest=""):
    return Response(f"PROTECTED:flask checkout {request.path}\n", mimetype="text/plain")


@app.route("/vip", host="shop.test")
def vip():
    return Response(f"PROTECTED:flask vip {request.host} {request.path}\n", mimetype="text/plain")


@app.route("/feed", host=ANY)
def feed(anyhost):
    gap = float(request.args.get("gap", "1"))

    def events():
        yield "data: first\n\n"
        time.sleep(gap)
        yield "data: second\n\n"

    return Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@app.route("/", host=ANY)
@app.route("/<path:rest>", host=ANY)
def public(anyhost, rest=""):
    return Response(f"PUBLIC:flask {request.host} {request.path}\n", mimetype="text/plain")


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"PORT {server.port}", flush=True)
    server.serve_forever()
