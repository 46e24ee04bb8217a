"""The painter server's peak memory under N concurrent uploads of the largest id map (4096 x 4096).

    python benchmarks/paint_memory.py [--clients 20] [--path labels|synthesize|both]

Starts `condgen paint` in a child process on a random-weight 32 px run (the tests' tiny VAE config), sends
the uploads at once from threads, and prints the server's resident memory before and its peak (VmHWM).
/labels decodes and resizes each map; /synthesize refuses it for its size (the model paints 32 x 32).
Linux only (/proc). Run it against other code with PYTHONPATH=... (the child inherits it).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, codes: list[int]) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            codes.append(r.status)
    except urllib.error.HTTPError as err:
        codes.append(err.code)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--path", choices=("labels", "synthesize", "both"), default="both")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.paint.conftest import TINY, TINY_VAE, random_run

    with tempfile.TemporaryDirectory() as tmp:
        run = random_run(Path(tmp) / "run", TINY, TINY_VAE)
        port = free_port()
        command = [sys.executable, "-m", "condgen", "paint", "--run", str(run), "--port", str(port)]
        server = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            url = f"http://127.0.0.1:{port}/"
            for _ in range(600):
                try:
                    urllib.request.urlopen(url + "classes", timeout=5).read()
                    break
                except OSError:
                    time.sleep(0.1)
            buf = io.BytesIO()
            Image.fromarray(np.zeros((4096, 4096), np.uint8)).save(buf, format="PNG")
            body = buf.getvalue()
            paths = ["labels", "synthesize"] if args.path == "both" else [args.path]
            for path in paths:
                before = status_kb(server.pid, "VmRSS")
                codes: list[int] = []
                threads = [threading.Thread(target=post, args=(url + path, body, codes))
                           for _ in range(args.clients)]
                start = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                took = time.perf_counter() - start
                peak = status_kb(server.pid, "VmHWM")
                print(f"/{path}: {args.clients} concurrent {len(body) // 1024} KB uploads of 4096x4096: "
                      f"RSS before {before / 1024:.0f} MB, peak so far {peak / 1024:.0f} MB, "
                      f"{took:.1f} s, answers {sorted(set(codes))}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
