"""`condgen paint --run RUN`: paint a label map in the browser and get the photo (a local GauGAN).

Starts the painter on http://127.0.0.1:8000 (offline, CPU is fine) and prints its URL. RUN is a run
directory (its latest checkpoint), a step_<N> folder or a `python -m condgen.convert` output. The server
listens on localhost only unless --host says otherwise. --check starts the server, fetches the page, the
classes and one synthesized image over HTTP, prints the time it took and exits (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from condgen.infer.diffusion import add_sampler_args, sampler_options, sampler_overrides
from condgen.rundir import CheckpointError

LOOPBACK = ["127.0.0.1", "localhost", "::1", "[::1]"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="condgen paint", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path,
                   help="run directory, step_<N> checkpoint folder or converted official folder")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--allow_host", action="append", default=[], metavar="NAME",
                   help="with --host other than localhost: another name or address browsers use to reach "
                        "this machine (the Host header; repeatable; '*' turns the check off)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--examples", type=Path,
                   help="folder of label-id PNGs offered as starting points (default RUN/examples/)")
    p.add_argument("--ema", action="store_true", help="use the run's EMA generator")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--check", action="store_true",
                   help="start, fetch the page and one image over HTTP, print the timings, stop")
    add_sampler_args(p)  # a diffusion model paints in --steps steps (fewer: faster, rougher)
    return p


class Server:
    """A uvicorn server in a background thread (for --check and the browser tests)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the paint server did not start (is the port in use?)")
            time.sleep(0.02)
        return url_of(self.server)

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def url_of(server) -> str:
    sock = server.servers[0].sockets[0]
    host, port = sock.getsockname()[:2]
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"


def check(url: str) -> dict:
    """GET the page and /classes, POST the first example (or a blank map) to /synthesize."""
    with urllib.request.urlopen(url, timeout=30) as r:
        page = r.read().decode()
    assert "condgen paint" in page, "the page did not come back"
    with urllib.request.urlopen(url + "classes", timeout=30) as r:
        info = json.load(r)
    with urllib.request.urlopen(url + "examples", timeout=30) as r:
        examples = json.load(r)["examples"]
    if examples:
        with urllib.request.urlopen(url + examples[0]["url"] + "?format=ids", timeout=60) as r:
            label = r.read()
    else:
        import io

        import numpy as np
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.zeros((info["height"], info["width"]), np.uint8)).save(buf, format="PNG")
        label = buf.getvalue()
    start = time.perf_counter()
    req = urllib.request.Request(url + "synthesize?seed=0", data=label, headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(req, timeout=600) as r:
        out = json.load(r)
    total = (time.perf_counter() - start) * 1000
    return {"classes": len(info["classes"]), "size": [info["height"], info["width"]],
            "examples": len(examples), "generation_ms": out["ms"][0], "request_ms": total}


def allowed_hosts(host: str, extra: list[str] = ()) -> list[str] | None:
    """The Host header values the server answers: a check against DNS rebinding (a web page whose own name
    resolves to this machine). Loopback: the loopback names. Another address: that address, this machine's
    names and addresses as far as they can be found, loopback and `extra`; None ('*' in extra): no check."""
    if "*" in extra:
        return None
    names = set(LOOPBACK) | set(extra)
    if host in LOOPBACK:
        return sorted(names)
    if host not in ("0.0.0.0", "::", ""):
        names.add(host)
    for name in (socket.gethostname(), socket.getfqdn()):
        names.add(name)
        try:
            names.update(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    try:  # the address of the default route (no packet is sent by a UDP connect)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            names.add(probe.getsockname()[0])
    except OSError:
        pass
    return sorted(n for n in names if n)


def exposure_warning(host: str, port: int, run: Path, examples: bool, hosts: list[str] | None) -> str:
    """What --host other than localhost makes reachable, for the user to decide."""
    lines = [
        f"warning: --host {host} serves the painter to every machine that can reach this one on port {port}, "
        "without a login:",
        f"  - the model ({run}) and its run path, to anyone who sends a request",
        "  - your CPU/GPU time (every /synthesize request runs the generator)",
    ]
    if examples:
        lines.append("  - the example label maps and their photos (training or validation data)")
    if hosts is None:
        lines.append("  the Host check is off (--allow_host '*'): pages on other sites can reach it by DNS "
                     "rebinding")
    else:
        lines.append(f"  requests must name this machine as one of: {', '.join(hosts)} "
                     "(add others with --allow_host NAME)")
    lines.append("  use it only on a network you trust; the default --host 127.0.0.1 serves this machine "
                 "only")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        print(f"error: condgen paint needs {err.name}: pip install 'condgen[paint]' "
              "(or pip install starlette uvicorn)", file=sys.stderr)
        return 2
    import torch

    from condgen.paint.model import PaintModel

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = PaintModel(args.run, ema=args.ema, device=args.device, examples=args.examples)
        sampler = sampler_options(args, model.pipe.G)
    except (FileNotFoundError, KeyError, ValueError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with sampler_overrides(**sampler):  # every request of this server samples with them
        return _serve(args, model)


def _serve(args: argparse.Namespace, model: Any) -> int:
    """Serve `model` until Ctrl+C (or, with --check, one request)."""
    from condgen.paint.app import create_app

    hosts = allowed_hosts(args.host, args.allow_host)
    app = create_app(model, allowed_hosts=hosts)
    if args.host not in LOOPBACK:
        print(exposure_warning(args.host, args.port, args.run, bool(model.example_names()), hosts),
              file=sys.stderr, flush=True)
    h, w = model.size
    about = (f"{model.info['kind']} {args.run} (step {model.info.get('step')}), {w}x{h} px, "
             f"{len(model.classes)} classes" + (", multi-modal" if model.multimodal else ""))
    if args.check:
        with Server(app, args.host, args.port) as url:
            print(f"condgen paint: serving {about} at {url}")
            result = check(url)
        print(f"check ok: page, {result['classes']} classes, {result['examples']} examples; one "
              f"{w}x{h} image in {result['generation_ms']:.0f} ms ({result['request_ms']:.0f} ms with HTTP)")
        return 0
    import uvicorn

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(*a, **k):
        await original(*a, **k)
        if server.started:
            print(f"condgen paint: serving {about}\n  open {url_of(server)} in a browser (Ctrl+C stops)",
                  flush=True)

    server.startup = startup
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
