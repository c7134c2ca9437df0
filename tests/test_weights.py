"""The weight cache and its downloads, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from videoinv.models import download as dl
from videoinv.models import weights as W
from videoinv.models.specs import load_encoder, load_generator

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    log: list = []
    flaky_left = {"count": 0}

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.log.append((url.path, self.headers.get("Range")))
        if url.path == "/gdrive":  # Google Drive: a confirmation page first
            page = (f'<html><body>Google Drive can\'t scan this file for viruses.<form id="download-form" '
                    f'action="/gdrive-file" method="get"><input type="submit" value="Download anyway"/>'
                    f'<input type="hidden" name="id" value="{query["id"]}"><input type="hidden" name="export" '
                    f'value="download"><input type="hidden" name="confirm" value="t"><input type="hidden" '
                    f'name="uuid" value="1234"></form></body></html>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if url.path == "/gdrive-file" and query.get("uuid") != "1234":
            self.send_error(403)
            return
        if url.path not in ("/file.bin", "/flaky.bin", "/gdrive-file"):
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        if url.path == "/flaky.bin" and self.flaky_left["count"] > 0:
            self.flaky_left["count"] -= 1
            self.wfile.write(body[:100_000])  # then hang up mid-file
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    Handler.log = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "weights"


def add(monkeypatch, name, url, layout="torch-state", sha256=None, size=None):
    w = W.WeightFile(name, f"{name}.bin", "a test file", "test licence (non-commercial)", url, "the tests",
                     layout, size=size, sha256=sha256)
    monkeypatch.setitem(W.WEIGHTS, name, w)
    return w


def test_fetch_records_checksum_and_reports_present(server, cache, monkeypatch):
    base, handler = server
    add(monkeypatch, "plain", f"{base}/file.bin", size=len(PAYLOAD))
    seen = []
    path = W.fetch("plain", progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD and W.status("plain") == "present"
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert json.loads((cache / "checksums.json").read_text())["plain"]["sha256"] == SHA
    assert W.verify(["plain"]) == [("plain", "ok", f"sha256 {SHA[:16]}...")]


def test_partial_download_resumes_with_a_range_request(server, cache, monkeypatch):
    base, handler = server
    add(monkeypatch, "resume", f"{base}/file.bin", sha256=SHA)
    cache.mkdir(parents=True)
    (cache / "resume.bin.part").write_bytes(PAYLOAD[:123_456])
    assert W.status("resume") == "partial"
    assert W.fetch("resume").read_bytes() == PAYLOAD
    assert handler.log == [("/file.bin", "bytes=123456-")]


def test_interrupted_transfer_is_resumed_automatically(server, cache, monkeypatch):
    base, handler = server
    handler.flaky_left["count"] = 1
    add(monkeypatch, "flaky", f"{base}/flaky.bin", sha256=SHA)
    assert W.fetch("flaky").read_bytes() == PAYLOAD
    assert handler.log == [("/flaky.bin", None), ("/flaky.bin", "bytes=100000-")]


def test_wrong_checksum_is_rejected_and_the_partial_file_removed(server, cache, monkeypatch):
    base, _ = server
    add(monkeypatch, "bad", f"{base}/file.bin", sha256="0" * 64)
    with pytest.raises(W.WeightsError, match="checksum mismatch") as info:
        W.fetch("bad")
    assert "videoinv weights import bad FILE" in str(info.value)
    assert W.status("bad") == "missing" and not list(cache.glob("bad*"))


def test_google_drive_confirmation_page_is_followed(server, cache, monkeypatch):
    base, handler = server
    monkeypatch.setattr(dl, "GDRIVE_URL", base + "/gdrive?id={id}&export=download&confirm=t")
    add(monkeypatch, "drive", "gdrive:FILEID123", sha256=SHA)
    assert W.fetch("drive").read_bytes() == PAYLOAD
    assert [p for p, _ in handler.log] == ["/gdrive", "/gdrive-file"]
    assert W.spec("drive").page == "https://drive.google.com/file/d/FILEID123/view"


def test_no_network_gives_the_helpful_message(cache, monkeypatch):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    add(monkeypatch, "offline", f"http://127.0.0.1:{port}/file.bin")
    result_err = None
    try:
        W.fetch("offline")
    except W.WeightsError as err:
        result_err = str(err)
    assert result_err is not None
    assert "no network?" in result_err and "videoinv weights import offline FILE" in result_err
    assert "\n" not in result_err


def test_missing_file_message_names_the_commands(cache):
    with pytest.raises(W.WeightsError) as info:
        W.require("fse-encoder")
    text = str(info.value)
    for words in ("fse-encoder", "143_enc.pth", "videoinv weights fetch fse-encoder",
                  "videoinv weights import fse-encoder FILE", "drive.google.com", "InterDigital"):
        assert words in text
    with pytest.raises(Exception, match="not in"):
        load_encoder("fse-encoder")


def test_import_checks_the_layout_then_copies_or_links(cache, monkeypatch, tmp_path):
    add(monkeypatch, "enc", "https://example.invalid/enc.pth", layout="encoder")
    E = load_encoder("random:64:16")
    good = tmp_path / "my_encoder.pth"
    torch.save(E.state_dict(), good)
    G, latent_avg = load_generator("random:64:16")
    wrong = tmp_path / "generator.pt"
    torch.save({"g_ema": G.state_dict(), "latent_avg": latent_avg}, wrong)
    with pytest.raises(Exception, match="not a FeatureStyleEncoder"):
        W.import_file("enc", wrong)
    assert W.status("enc") == "missing"
    dest, described = W.import_file("enc", good, link=True)
    assert dest.is_symlink() and "FeatureStyleEncoder" in described
    with pytest.raises(W.WeightsError, match="--force"):
        W.import_file("enc", good)
    E2 = load_encoder("enc")
    x = torch.rand(1, 3, 256, 256)
    assert torch.equal(E(x)[1], E2(x)[1])


def test_import_a_direction_and_verify_catches_damage(cache, tmp_path):
    direction = tmp_path / "smile.npy"
    np.save(direction, (np.ones((1, 9216)) / 96).astype(np.float32))
    dest, described = W.import_file("fse-direction-smile", direction)
    assert "(18, 512)" in described
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones((1, 512), np.float32))
    with pytest.raises(W.WeightsError, match="18x512"):
        W.import_file("fse-direction-eyeglasses", bad)
    data = bytearray(dest.read_bytes())
    data[-1] ^= 0xFF
    dest.write_bytes(bytes(data))
    result = subprocess.run([sys.executable, "-m", "videoinv", "weights", "verify"], capture_output=True, text=True)
    assert result.returncode == 1 and "fse-direction-smile: MISMATCH" in result.stdout
    assert "videoinv weights fetch --force" in result.stderr


def test_cli_list_shows_licences_status_and_paths(cache):
    result = subprocess.run([sys.executable, "-m", "videoinv", "weights", "list", "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    rows = {r["name"]: r for r in listing["weights"]}
    assert {"stylegan2-ffhq-1024", "psp-ffhq-encode", "fse-encoder"} <= set(rows)
    assert "non-commercial" in rows["stylegan2-ffhq-1024"]["licence"]
    assert "no commercial use" in rows["fse-encoder"]["licence"]
    assert all(r["status"] == "missing" for r in rows.values())
    assert rows["fse-encoder"]["path"] == str(cache / "143_enc.pth")
    table = subprocess.run([sys.executable, "-m", "videoinv", "weights", "list"], capture_output=True, text=True)
    assert "fse-encoder" in table.stdout and "research only" in table.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_cli_list_table_fits_the_terminal_without_empty_columns(cache, columns):
    # at 80 columns the file and purpose columns used to be squeezed to nothing ('│││') and the
    # status cut to 'missi…'
    env = dict(os.environ, COLUMNS=str(columns))
    out = subprocess.run([sys.executable, "-m", "videoinv", "weights", "list"], capture_output=True, text=True,
                         env=env).stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "││" not in out and "┃┃" not in out
    row = next(line for line in lines if "fse-encoder " in line)
    assert "│ missing │" in row
    assert ("143_enc.pth" in out) == (columns >= 150)  # the file names, where there is room
    assert "--json" in lines[-1]
