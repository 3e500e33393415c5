"""A small board service for the `app` package profile: readings kept in
sqlite3, served as JSON over HTTP, fetched back with requests.

Run with `--self-test` it serves on a free local port, posts and reads one
reading, and exits 0 when the round trip is right (how `qemu-test --app`
proves the application runs from its package alone); without it, it serves
on port 8080 until stopped.
"""

import json
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.execute("create table reading (sensor text, value real)")
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with LOCK:
            DB.execute("insert into reading values (?, ?)", (body["sensor"], body["value"]))
        self.send_response(204)
        self.end_headers()

    def do_GET(self):
        with LOCK:
            rows = DB.execute("select sensor, avg(value), count(*) from reading group by sensor").fetchall()
        data = json.dumps({s: {"mean": m, "count": n} for s, m, n in rows}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    self_test = "--self-test" in sys.argv
    server = ThreadingHTTPServer(("127.0.0.1", 0 if self_test else 8080), Handler)
    if not self_test:
        server.serve_forever()
        return 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    for value in (20.5, 21.5):
        requests.post(url, json={"sensor": "t1", "value": value}, timeout=30).raise_for_status()
    got = requests.get(url, timeout=30).json()
    server.shutdown()
    ok = got == {"t1": {"mean": 21.0, "count": 2}}
    print(f"http_service self-test: {'ok' if ok else 'wrong'}: {got} (requests {requests.__version__}, sqlite {sqlite3.sqlite_version})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
