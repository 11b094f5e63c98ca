#!/usr/bin/env python3
"""A simulated departmental REST system for `scripts/cluster-demo.sh`: serves generated
Nanchang penalty records (see gen_records.py), paged (`pageNo`, `pageSize`) and filtered by
update time (`since`), in the `{"code","msg","data":{"total","rows"}}` envelope, and adds
`--grow` new records every second. Logs each request with the time, so a reader can see that
one instance at a time pulls each list.

Usage: scripts/demo_peer.py PORT [--records N] [--grow K] [--lists a,b]
"""
import json
import os
import sys
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_records  # noqa: E402

BASE = datetime(2024, 6, 1)


def record(i: int) -> dict:
    """Record `i` of gen_records.py, changed at second `i` after 2024-06-01."""
    r = gen_records.record(i)
    r["cd_time"] = (BASE + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
    return r


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    port = int(args[0])
    opt = lambda name, default: args[args.index(name) + 1] if name in args else default  # noqa: E731
    count = int(opt("--records", "2000"))
    grow = int(opt("--grow", "20"))
    lists = opt("--lists", "a,b").split(",")
    lock = threading.Lock()
    rows = {name: [record(k * 1_000_000 + i) for i in range(count)] for k, name in enumerate(lists)}

    def grower() -> None:
        while True:
            time.sleep(1)
            with lock:
                for k, name in enumerate(lists):
                    n = len(rows[name])
                    rows[name].extend(record(k * 1_000_000 + i) for i in range(n, n + grow))

    threading.Thread(target=grower, daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            name = url.path.strip("/").split("/")[0]
            if name not in rows:
                self.send_error(404)
                return
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            page, size, since = int(q.get("pageNo", 1)), int(q.get("pageSize", 100)), q.get("since", "")
            with lock:
                selected = [r for r in rows[name] if r["cd_time"] >= since]
            body = json.dumps(
                {"code": "200", "msg": "success",
                 "data": {"total": len(selected), "rows": selected[(page - 1) * size: page * size]}},
                ensure_ascii=False,
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *a) -> None:
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} {fmt % a}\n")

    print(f"demo peer on 127.0.0.1:{port}: lists {lists}, {count} records each, +{grow}/s", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
