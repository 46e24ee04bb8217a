"""`condgen weights fetch` against a local HTTP server on 127.0.0.1: a right file is kept, a wrong one is
refused and not kept, a truncated transfer is resumed (or restarted when the server ignores ranges),
mirrors and the offline switch are honoured, and `condgen weights` reports each file's status. Nothing
leaves this machine."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from condgen import fetch as fetch_mod
from condgen.cli.main import main
from condgen.fetch import WeightsFetchError, fetch
from condgen.weights import WEIGHT_FILES, WeightFile, WeightsMismatchError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, so a transfer spans several reads
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves `files` by name. `cut[name]`: how many next responses stop after half their bytes;
    `ranges`: whether Range requests are honoured (206) or ignored (200, the whole file)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                body, start = server.files[name], 0
                rng = self.headers.get("Range")
                if rng and server.ranges:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                if server.cut.get(name, 0) > 0:  # the connection drops half-way
                    server.cut[name] -= 1
                    rest = rest[: len(rest) // 2]
                self.wfile.write(rest)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for var in ("CONDGEN_WEIGHTS_MIRROR", "CONDGEN_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


def toy(server: Server, sha256: str | None = DIGEST, name: str = "toy.pth") -> WeightFile:
    url = f"{server.url}/published/{name}"
    return WeightFile("toy net", (name,), url, sha256, size="100 KiB", name="toy")


def test_right_file_is_kept_and_not_fetched_twice(server):
    server.files["published/toy.pth"] = PAYLOAD
    w = toy(server, sha256=DIGEST[:8])  # a torch.hub-style prefix is enough
    path = fetch(w, progress=False)
    assert path == w.destination() and path.read_bytes() == PAYLOAD
    assert [p.name for p in path.parent.iterdir()] == ["toy.pth"]  # no .part left behind
    assert w.resolve() == path
    fetch(w, progress=False)
    assert len(server.requests) == 1  # verified in place: no second download


def test_wrong_file_is_refused_and_not_kept(server):
    server.files["published/toy.pth"] = PAYLOAD[::-1]
    w = toy(server)
    with pytest.raises(WeightsMismatchError) as err:
        fetch(w, progress=False)
    msg = str(err.value)
    assert "toy.pth" in msg and DIGEST in msg and hashlib.sha256(PAYLOAD[::-1]).hexdigest() in msg
    assert not w.destination().parent.exists() or not any(w.destination().parent.iterdir())


def test_existing_wrong_file_is_replaced(server):
    server.files["published/toy.pth"] = PAYLOAD
    w = toy(server)
    w.destination().parent.mkdir(parents=True)
    w.destination().write_bytes(b"an old, wrong file")
    assert fetch(w, progress=False).read_bytes() == PAYLOAD


def test_truncated_transfer_is_resumed_with_a_range_request(server):
    server.files["published/toy.pth"] = PAYLOAD
    server.cut["published/toy.pth"] = 1
    assert fetch(toy(server), progress=False).read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_truncated_transfer_restarts_when_ranges_are_ignored(server):
    server.files["published/toy.pth"] = PAYLOAD
    server.cut["published/toy.pth"] = 1
    server.ranges = False
    assert fetch(toy(server), progress=False).read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_a_transfer_that_keeps_failing_leaves_only_a_part_that_the_next_fetch_resumes(server):
    server.files["published/toy.pth"] = PAYLOAD
    server.cut["published/toy.pth"] = 3
    w = toy(server)
    with pytest.raises(WeightsFetchError, match="failed 2 times") as err:
        fetch(w, progress=False, retries=1)
    part = w.destination().with_name("toy.pth.part")
    assert not w.destination().exists() and 0 < part.stat().st_size < len(PAYLOAD)
    assert str(part) in str(err.value) and "condgen weights fetch toy" in str(err.value)
    with pytest.raises(FileNotFoundError):  # a .part is never taken for the weights
        w.resolve()
    have = part.stat().st_size
    assert fetch(w, progress=False).read_bytes() == PAYLOAD  # the server's last cut response, then a resume
    assert server.requests[-1][1] == f"bytes={have + (len(PAYLOAD) - have) // 2}-" and not part.exists()


def test_mirror_by_environment_option_and_folder(server, tmp_path, monkeypatch):
    server.files["mirror/toy.pth"] = PAYLOAD  # looked up by file name under the base URL
    w = toy(server)
    monkeypatch.setenv("CONDGEN_WEIGHTS_MIRROR", f"{server.url}/mirror/")
    assert fetch(w, progress=False).read_bytes() == PAYLOAD
    assert server.requests == [("mirror/toy.pth", None)]
    w.destination().unlink()
    server.files["other/toy.pth"] = PAYLOAD
    fetch(w, mirror=f"{server.url}/other", progress=False)  # the option wins over the variable
    assert server.requests[-1] == ("other/toy.pth", None)
    folder = tmp_path / "shared_weights"
    folder.mkdir()
    (folder / "toy.pth").write_bytes(PAYLOAD)
    w.destination().unlink()
    assert fetch(w, mirror=str(folder), progress=False).read_bytes() == PAYLOAD
    with pytest.raises(WeightsFetchError, match="HTTP 404"):
        fetch(toy(server, name="absent.pth"), mirror=server.url, progress=False)
    gone = toy(server, name="gone.pth")
    with pytest.raises(WeightsFetchError, match="could not read http://127.0.0.1:9/gone.pth .*_MIRROR"):
        fetch(gone, mirror="http://127.0.0.1:9", progress=False, retries=0)  # nothing listens on port 9
    assert not gone.destination().with_name("gone.pth.part").exists()


@pytest.mark.parametrize("var", ["CONDGEN_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_switch_refuses_the_network_but_not_a_local_mirror(server, tmp_path, monkeypatch, var):
    server.files["published/toy.pth"] = PAYLOAD
    monkeypatch.setenv(var, "1")
    w = toy(server)
    with pytest.raises(WeightsFetchError, match=f"offline mode is on \\(\\${var}\\)"):
        fetch(w, progress=False)
    assert server.requests == [] and not w.destination().exists()
    (tmp_path / "toy.pth").write_bytes(PAYLOAD)
    assert fetch(w, mirror=str(tmp_path), progress=False).read_bytes() == PAYLOAD


def test_web_page_instead_of_the_file_is_refused(server, monkeypatch):
    w = WeightFile("drive file", ("d.pth",), f"{server.url}/page", None, name="d")

    def page(url, part, **kw):  # what Google Drive sends for a file it wants confirmed
        raise fetch_mod.urllib.error.HTTPError(url, 415, "a web page came back", None, None)

    monkeypatch.setattr(fetch_mod, "_transfer", page)
    with pytest.raises(WeightsFetchError, match="web page"):
        fetch(w, progress=False)


def test_weights_command_lists_status_and_fetches_by_name(server, monkeypatch, capsys):
    server.files["published/toy.pth"] = PAYLOAD
    w = toy(server)
    monkeypatch.setitem(WEIGHT_FILES, "toy", w)
    assert main(["weights", "--no_hash"]) == 0
    out = capsys.readouterr().out
    assert "missing  toy" in out and "condgen weights fetch toy" in out and "missing  vgg_loss" in out
    assert main(["weights", "fetch", "toy", "--no_progress"]) == 0
    assert w.destination().read_bytes() == PAYLOAD
    assert main(["weights"]) == 0 and f"sha256 {DIGEST}" in capsys.readouterr().out
    w.destination().write_bytes(b"corrupted")
    assert main(["weights"]) == 1 and "MISMATCH toy" in capsys.readouterr().out
    assert main(["weights", "fetch", "nothing"]) == 2
    err = capsys.readouterr().err
    assert "'nothing'" in err and "vgg19" in err and "upernet101_ade20k" in err


def test_every_declared_file_has_a_fetch_name_and_an_http_url():
    from condgen.cli.weights import known_weights, select

    known = known_weights()
    assert {"inception", "alexnet", "vgg19", "deeplabv2_cocostuff", "drn_d105_cityscapes"} <= set(
        WEIGHT_FILES
    )
    assert all(w.url.startswith(("http://", "https://")) and " " not in w.url for w in known)
    upernet = [w.key for w in select(["upernet101_ade20k"])]
    assert upernet == ["upernet101_ade20k_encoder", "upernet101_ade20k_decoder"]
    assert select(["vgg19-dcbb9e9d.pth"]) == [WEIGHT_FILES["vgg19"]] and select(["all"]) == known
