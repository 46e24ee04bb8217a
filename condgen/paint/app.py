"""The painter's ASGI app (Starlette): one static page and a small JSON/PNG API over a `PaintModel`.

    GET  /                      the page (static/index.html; no build step, no CDN, works offline)
    GET  /classes               the model: size, whether it is multi-modal, classes (id, name, color, group)
    GET  /examples              names of example label maps
    GET  /examples/{name}       an example as a PNG: ?format=ids (default), color, or photo (its real photo)
    POST /labels                a PNG in the body (?input=ids|color) -> its ids at the model's size:
                                ?output=json (default: base64 ids + note), ids (mode-L PNG) or color (PNG)
    POST /style                 a style photo in the body (PNG/JPEG) -> {"style": key, "preview": data URL}
    GET  /checkpoint            the checkpoint served: {"step", "checkpoint", "newer_step"} (a run still
                                training: the step of a newer checkpoint, else null)
    POST /reload                serve the run's newest checkpoint -> {"reloaded", "step", "checkpoint"}
    GET|POST /region_style,     a SEAN model's style panel: photos read per region, a style per class
    POST /region_synthesize     (see condgen/paint/region_styles.py)
    POST /synthesize            an id-map PNG in the body; ?seed=&samples=&style= ->
                                {"images": [data URLs], "ms": [per image], "seed"}; ?format=png: the first
                                image as a PNG

Bad input answers 4xx with {"error": message}; nothing else is served (no path comes from a request).
A POST that a browser sends on behalf of another site (an `Origin` other than the page's own, `Origin:
null`, `Sec-Fetch-Site: cross-site` or `same-site`) is refused with 403 before its body is read: any web page
can send a "simple" POST without a preflight, and although the browser hides the answer, the server would do
the work. Requests without these headers (curl, Python scripts) are served.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from condgen.paint.model import MAX_BYTES, InputError, PaintModel, data_url, png_bytes
from condgen.paint.region_styles import RegionStyles
from condgen.rundir import read_state

STATIC = Path(__file__).resolve().parent / "static"


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BYTES:
        mib = int(declared) / 2**20
        raise InputError(f"the upload is {mib:.1f} MiB, over the {MAX_BYTES // 2**20} MiB limit", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BYTES:
            raise InputError(f"the upload is over the {MAX_BYTES // 2**20} MiB limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> dict:
    """A JSON object body (size-limited like every upload)."""
    import json

    try:
        body = json.loads(await _body(request))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"the request body is not JSON ({err})") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


def _int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{name} must be an integer, got {value!r}") from None


def _choice(request: Request, name: str, choices: tuple[str, ...]) -> str:
    value = request.query_params.get(name, choices[0])
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def cross_site(headers: dict[str, str]) -> str | None:
    """Why a request with these (lower-case) headers comes from another site's page, or None.

    Browsers name the page that sends a request in `Origin` (on every POST) and, in current browsers,
    `Sec-Fetch-Site`; scripts send neither, so a request without them is allowed.
    """
    site = headers.get("sec-fetch-site", "")
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get("origin")
    if origin is None:
        return None
    if origin == "null":  # sandboxed frames, file:// pages, data: URLs
        return "Origin: null"
    parts = urlsplit(origin)
    host = headers.get("host", "")
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
        return f"Origin: {origin} is not this server ({host})"
    return None


class SameOriginPosts:
    """ASGI middleware: answer 403 to a POST sent by another site's page (see `cross_site`)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            why = cross_site(headers)
            if why is not None:
                message = (f"refused a request from another web site ({why}): the painter only answers its "
                           "own page and scripts that send no Origin")
                await _error(message, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(model: PaintModel, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The app serving `model` (tests drive it with `starlette.testclient.TestClient`).

    Args:
        allowed_hosts: refuse requests whose Host header is not one of these (the CLI passes the loopback
            names when it listens on localhost, so that a web page cannot reach it by DNS rebinding).
    """

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except InputError as err:
                return _error(str(err), err.status)

        return endpoint

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def classes(request: Request) -> Response:
        return JSONResponse(model.describe())

    async def checkpoint(request: Request) -> Response:
        newer = model.newer_checkpoint()
        return JSONResponse({"step": model.info.get("step"), "checkpoint": model.info.get("checkpoint"),
                             "newer_step": read_state(newer).get("step") if newer is not None else None})

    async def reload(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(model.reload))

    async def examples(request: Request) -> Response:
        names = model.example_names()
        return JSONResponse({"examples": [{"name": n, "url": f"examples/{n}"} for n in names]})

    async def example(request: Request) -> Response:
        fmt = _choice(request, "format", ("ids", "color", "photo"))
        item = await run_in_threadpool(model.example, request.path_params["name"])
        if fmt == "photo":
            if "image" not in item:
                raise InputError(f"example {request.path_params['name']!r} has no photo", 404)
            return Response(png_bytes(item["image"]), media_type="image/png")
        data = model.id_png(item["label"]) if fmt == "ids" else model.color_png(item["label"])
        return Response(data, media_type="image/png")

    async def labels(request: Request) -> Response:
        kind = _choice(request, "input", ("ids", "color"))
        output = _choice(request, "output", ("json", "ids", "color"))
        data = await _body(request)
        ids, note = await run_in_threadpool(model.decode_labels, data, kind=kind, resize=True)
        if output == "ids":
            return Response(model.id_png(ids), media_type="image/png")
        if output == "color":
            return Response(model.color_png(ids), media_type="image/png")
        h, w = ids.shape
        raw = ids.astype("uint8").tobytes() if ids.dtype.itemsize == 1 else ids.astype("<u2").tobytes()
        return JSONResponse({"width": w, "height": h, "bytes_per_id": 1 if ids.dtype.itemsize == 1 else 2,
                             "ids": base64.b64encode(raw).decode(), "note": note})

    async def style(request: Request) -> Response:
        data = await _body(request)
        return JSONResponse(await run_in_threadpool(model.add_style, data))

    regions = RegionStyles(model)

    async def region_style(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(regions.info())
        body = await _json(request)
        return JSONResponse(await run_in_threadpool(regions.add, body))

    async def region_synthesize(request: Request) -> Response:
        seed = _int(request, "seed", 0)
        body = await _json(request)
        return JSONResponse(await run_in_threadpool(regions.synthesize, body, seed=seed))

    async def synthesize(request: Request) -> Response:
        seed = _int(request, "seed", 0)
        samples = _int(request, "samples", 1)
        fmt = _choice(request, "format", ("json", "png"))
        style_key = request.query_params.get("style") or None
        data = await _body(request)
        ids, _ = await run_in_threadpool(model.decode_labels, data, kind="ids", resize=False)
        out = await run_in_threadpool(model.synthesize, ids, seed=seed, samples=samples, style=style_key)
        pngs = [png_bytes(img) for img in out["images"]]
        if fmt == "png":
            ms = {"X-Generation-Ms": f"{out['ms'][0]:.1f}"}
            return Response(pngs[0], media_type="image/png", headers=ms)
        return JSONResponse({"images": [data_url(p) for p in pngs], "ms": out["ms"], "seed": out["seed"],
                             "samples": out["samples"], "style": out["style"]})

    routes = [
        Route("/", index),
        Route("/classes", guarded(classes)),
        Route("/checkpoint", guarded(checkpoint)),
        Route("/reload", guarded(reload), methods=["POST"]),
        Route("/examples", guarded(examples)),
        Route("/examples/{name}", guarded(example)),
        Route("/labels", guarded(labels), methods=["POST"]),
        Route("/style", guarded(style), methods=["POST"]),
        Route("/synthesize", guarded(synthesize), methods=["POST"]),
        Route("/region_style", guarded(region_style), methods=["GET", "POST"]),
        Route("/region_synthesize", guarded(region_synthesize), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    from starlette.middleware import Middleware

    middleware = [Middleware(SameOriginPosts)]
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.model = model
    app.state.region_styles = regions
    return app
