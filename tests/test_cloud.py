"""mwnb.cloud against real servers on 127.0.0.1: a cache that cannot lie, downloads that never keep a partial or
wrong file, URLs checked before any request, range reads that stay polite, deadlines that hold. Hostile servers
(HTML for FITS, '..' paths, file:// and link-local answers, dripping bodies) live in this file."""
import gzip, hashlib, io, json, logging, os, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import numpy as np
import pytest
import requests
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.table import Table
from astropy.wcs import WCS
from astropy.coordinates import SkyCoord

from mwnb import cloud
from mwnb.cloud import cached, cache_paths, check_fits, download, open_fits, s3_filesystem
from mwnb.cutouts import cutout
from mwnb.errors import ArchiveUnavailableError, BadInputFileError, DownloadError, NoCloudCopyError, UnsafePathError


def sha(b): return hashlib.sha256(b).hexdigest()


def fits_bytes(data, header=None):
    buf = io.BytesIO(); fits.PrimaryHDU(data, header=header).writeto(buf); return buf.getvalue()


class LocalServer:
    """A threaded http server on 127.0.0.1 that answers every GET/HEAD with `answer(path, headers)` ->
    (status, headers, body bytes or an iterator of byte blocks, sent as they come). Logs every request
    (method, path, headers, status); a body shorter than its Content-Length closes the connection, as a cut one would."""
    def __init__(self, answer=None):
        self.log = []
        if answer is not None: self.answer = answer
        host = self
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def do_HEAD(self): self.reply(body=False)
            def do_GET(self): self.reply(body=True)
            def reply(self, body):
                host.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "status": None})
                status, headers, content = host.answer(self.path, self.headers)
                host.log[-1]["status"] = status
                self.send_response(status)
                for k, v in headers.items(): self.send_header(k, v)
                if "Content-Length" not in headers: self.send_header("Connection", "close"); self.close_connection = True
                self.end_headers()
                if not body: return
                sent = 0
                try:
                    for block in ([content] if isinstance(content, bytes) else content):
                        self.wfile.write(block); self.wfile.flush(); sent += len(block)
                except (BrokenPipeError, ConnectionResetError): self.close_connection = True
                if sent < int(headers.get("Content-Length", sent)): self.close_connection = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self): self.server.shutdown(); self.server.server_close()


class TinyServer(LocalServer):
    """A LocalServer of files that can carry an ETag, omit Content-Length, be cut off, or change after a cut;
    it honours `Range` and `If-Range` (a Range is served only when If-Range matches the ETag)."""
    def __init__(self):
        self.files = {}
        super().__init__()

    def answer(self, path, headers):
        f = self.files.get(path)
        if f is None: return 404, {"Content-Length": "0"}, b""
        body, etag = f["body"], f.get("etag")
        rng, if_range = headers.get("Range"), headers.get("If-Range")
        start = int(rng[6:].split("-")[0]) if rng and (if_range is None or if_range == etag) else None
        part = body if start is None else body[start:]
        out = {}
        if etag: out["ETag"] = etag
        if start is not None: out["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        if f.get("length", True): out["Content-Length"] = str(len(part))   # without it the body ends when the connection does
        return (200 if start is None else 206), out, self._body(f, part)

    @staticmethod
    def _body(f, part):
        "The body, a third of it when the file still has `cuts` left (then `after_cut` may change the file)."
        if f.get("cuts", 0) > 0:
            f["cuts"] -= 1
            yield part[:len(part) // 3]
            if f.get("after_cut"): f.pop("after_cut")(f)
        else: yield part

    def add(self, path, body, **kw):
        self.files[path] = dict(body=body, **kw)
        return self.url + path

    def gets(self, path): return [r for r in self.log if r["path"] == path and r["method"] == "GET"]


@pytest.fixture
def tiny(monkeypatch):
    "A TinyServer that the test trusts (as a user who runs a server on this machine would, with trust_host)."
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    monkeypatch.setattr(cloud, "_TRUSTED", set())
    s = TinyServer()
    cloud.trust_host(s.url)
    yield s
    s.stop()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("MWNB_CACHE_DIR", str(d))
    return d


def parts_left(root): return [p for p in Path(root).rglob("*.part")]


# 1. keys from the full URL: two MAST download links that differ only in the query string are two entries
def test_query_string_makes_two_cache_entries(archive, cache_dir):
    contents = {"mast:HST/product/a_drz.fits": fits_bytes(np.full((8, 8), 1.0)),
                "mast:HST/product/b_drz.fits": fits_bytes(np.full((8, 8), 2.0))}   # same size, different data
    archive.add_route("/mast/api/Download/file",
                      lambda method, path, params, body: (200, {"Content-Type": "image/fits"}, contents[params["uri"][0]]))
    base = archive.url + "/mast/api/Download/file?uri="
    a, b = cached(base + "mast:HST/product/a_drz.fits"), cached(base + "mast:HST/product/b_drz.fits")
    assert a != b and (a.name, b.name) == ("a_drz.fits", "b_drz.fits")
    assert a.read_bytes() == contents["mast:HST/product/a_drz.fits"] and b.read_bytes() == contents["mast:HST/product/b_drz.fits"]
    assert len(archive.requests_to("/mast/api/Download/file")) == 2
    assert cached(base + "mast:HST/product/a_drz.fits") == a          # a hit: no third request
    assert len(archive.requests_to("/mast/api/Download/file")) == 2
    meta = json.loads(cache_paths(base + "mast:HST/product/b_drz.fits")[1].read_text())
    assert meta["url"] == base + "mast:HST/product/b_drz.fits" and meta["sha256"] == sha(contents["mast:HST/product/b_drz.fits"])
    assert meta["size"] == len(contents["mast:HST/product/b_drz.fits"])


# 2. a same-size wrong file in the cache is caught by its sha256 and fetched again
def test_same_size_corruption_is_detected_and_refetched(archive, cache_dir, caplog):
    payload = fits_bytes(np.arange(400.0).reshape(20, 20))
    url = archive.add_file("/heasarc/FTP/demo/cache9/img.fits", payload)
    p = cached(url)
    bad = bytearray(p.read_bytes()); bad[-100] ^= 0xFF
    p.write_bytes(bytes(bad))
    assert p.stat().st_size == len(payload) and p.read_bytes() != payload
    with caplog.at_level(logging.WARNING, logger="mwnb.cloud"):
        again = cached(url)
    assert again.read_bytes() == payload
    assert "sha256 changed" in caplog.text
    assert len([r for r in archive.requests_to("/heasarc/FTP/demo/cache9") if r["method"] == "GET"]) == 2


# 3. a cache hit needs no server: the server is stopped, its port dead, and the hit still works
def test_cache_hit_with_the_server_down(tiny, cache_dir, monkeypatch):
    payload = fits_bytes(np.ones((30, 30)))
    url = tiny.add("/data/img.fits", payload, etag='"e1"')
    assert cached(url).read_bytes() == payload
    n = len(tiny.log)
    tiny.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    assert cached(url).read_bytes() == payload
    monkeypatch.setenv("MWNB_CACHE", "1")
    with open_fits(url) as h: assert h[0].data.sum() == 900
    assert len(tiny.log) == n


# 4. two processes downloading one file: one correct file, one transfer, no temporary files left
RUN = "import sys; from mwnb.cloud import {fn}; {fn}(sys.argv[1]{extra})"


def run_two(code, *args):
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs


def test_two_processes_one_download(archive, tmp_path):
    payload = np.random.default_rng(4).bytes(4 * 2**20)
    url = archive.add_file("/heasarc/FTP/demo/race/big.bin", payload)
    archive.inject_fault("/heasarc/FTP/demo/race", kind="slow", delay=1.0, times=1)   # both processes overlap
    dest = tmp_path / "out" / "big.bin"
    run_two(RUN.format(fn="download", extra=", sys.argv[2], progress=False"), url, str(dest))
    assert sha(dest.read_bytes()) == sha(payload)
    assert list((tmp_path / "out").iterdir()) == [dest]                              # no .part or lock beside it
    methods = [r["method"] for r in archive.requests_to("/heasarc/FTP/demo/race")]
    assert methods.count("GET") == 1, methods                                        # the second found it complete


def test_two_processes_one_cache_entry(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path / "cache"))
    payload = np.random.default_rng(5).bytes(2 * 2**20)
    url = archive.add_file("/heasarc/FTP/demo/race2/big.bin", payload)
    archive.inject_fault("/heasarc/FTP/demo/race2", kind="slow", delay=1.0, times=1)
    run_two(RUN.format(fn="cached", extra=""), url)
    path, sidecar = cache_paths(url)
    assert sha(path.read_bytes()) == sha(payload) == json.loads(sidecar.read_text())["sha256"]
    assert [r["method"] for r in archive.requests_to("/heasarc/FTP/demo/race2")] == ["GET"]
    assert parts_left(tmp_path) == []


# 6. no Content-Length and a cut connection: the FITS check fails and nothing is kept under the final name
def test_cut_transfer_without_length_is_not_kept(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MWNB_MAX_RETRIES", "1")
    payload = fits_bytes(np.random.default_rng(2).normal(size=(200, 200)))
    url = tiny.add("/nolen/img.fits", payload, length=False, cuts=10)
    with pytest.raises(DownloadError, match="no length") as e:
        download(url, tmp_path / "img.fits", progress=False)
    assert "incomplete" in str(e.value)
    assert list(tmp_path.iterdir()) == []
    assert len(tiny.gets("/nolen/img.fits")) == 2                                    # tried, retried, gave up
    tiny.files["/nolen/img.fits"]["cuts"] = 0                                        # a whole body, still no length
    assert download(url, tmp_path / "img.fits", progress=False).read_bytes() == payload
    (tmp_path / "cut.fits").write_bytes(payload[:len(payload) // 3])
    with pytest.raises(BadInputFileError, match="incomplete"):
        check_fits(tmp_path / "cut.fits")


# 7. resume only with If-Range: same file -> 206 and a correct splice; changed file -> whole new file, no splice
def test_resume_sends_if_range_and_keeps_an_unchanged_file(tiny, tmp_path):
    v1 = np.random.default_rng(7).bytes(600_000)
    url = tiny.add("/r/a.bin", v1, etag='"v1"', cuts=1)
    assert download(url, tmp_path / "a.bin", progress=False).read_bytes() == v1
    first, second = tiny.gets("/r/a.bin")
    assert "Range" not in first["headers"]
    resumed_at = int(second["headers"]["Range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= 200_000 and second["headers"]["If-Range"] == '"v1"'   # 200000 bytes came before the cut
    assert second["status"] == 206


def test_a_changed_file_restarts_from_zero(tiny, tmp_path):
    v1, v2 = np.random.default_rng(8).bytes(600_000), np.random.default_rng(9).bytes(600_000)   # same length
    url = tiny.add("/r/b.bin", v1, etag='"v1"', cuts=1, after_cut=lambda f: f.update(body=v2, etag='"v2"'))
    got = download(url, tmp_path / "b.bin", progress=False).read_bytes()
    assert got == v2 and got != v1[:200_000] + v2[200_000:]
    second = tiny.gets("/r/b.bin")[1]
    assert second["headers"]["If-Range"] == '"v1"' and second["status"] == 200
    assert parts_left(tmp_path) == []


# 8. a cutout over http moves under 2% of a 64 MiB image, counted at the server, with the right pixels
def test_https_cutout_reads_under_two_percent(archive):
    ny = nx = 4096
    data = np.random.default_rng(1).normal(size=(ny, nx)).astype(np.float32)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]; w.wcs.crval = [83.63321, 22.01446]
    w.wcs.crpix = [nx / 2, ny / 2]; w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    body = fits_bytes(data, w.to_header())
    path = "/heasarc/FTP/demo/http64/big64.fits"
    url = archive.add_file(path, body)
    pos = SkyCoord(83.63321, 22.01446, unit="deg")
    c = cutout(url, pos, 128)
    sent = sum(r["bytes"] for r in archive.requests_to(path))
    print(f"https cutout: {sent} of {len(body)} bytes = {sent / len(body):.4%} in {len(archive.requests_to(path))} requests")
    assert len(body) > 64 * 2**20 and sent > 128 * 128 * 4                         # the count is real
    assert sent <= 0.02 * len(body), f"read {sent} of {len(body)} bytes"
    assert np.array_equal(c.data, Cutout2D(data, pos, 128, wcs=w).data)


# a stalled server: every client has a timeout
def test_a_stalled_https_server_fails_fast(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("MWNB_TIMEOUT", "0.5"); monkeypatch.setenv("MWNB_MAX_RETRIES", "0")
    url = archive.add_file("/heasarc/FTP/demo/stall/img.fits", fits_bytes(np.ones((10, 10))))
    archive.inject_fault("/heasarc/FTP/demo/stall", kind="slow", delay=4.0, times=10)
    t0 = time.time()
    with pytest.raises(ArchiveUnavailableError):
        download(url, tmp_path / "img.fits", progress=False)
    assert time.time() - t0 < 2.5
    t0 = time.time()
    with pytest.raises(ArchiveUnavailableError):   # fsspec alone would call it FileNotFoundError
        open_fits(url)
    assert time.time() - t0 < 3.0
    with pytest.raises(FileNotFoundError, match="HTTP 404"):
        open_fits(archive.url + "/heasarc/FTP/demo/nothere/missing.fits")
    assert s3_filesystem().config_kwargs == {"connect_timeout": 10.0, "read_timeout": 0.5}




# ---------------------------------------------------------------------------------------------------------------
# Hostile servers: each answers what a broken, compromised or misconfigured server could answer (a LocalServer each).
@pytest.fixture
def hostile(monkeypatch):
    "Start hostile LocalServers (trusted unless trusted=False); fast retries; all stopped at the end."
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    monkeypatch.setattr(cloud, "_TRUSTED", set())
    started = []
    def start(answer, trusted=True):
        h = LocalServer(answer)
        if trusted: cloud.trust_host(h.url)
        started.append(h)
        return h
    yield start
    for h in started: h.stop()


def files_under(root): return sorted(p for p in Path(root).rglob("*") if p.is_file())


GZ_FITS = gzip.compress(fits_bytes(np.arange(64.0, dtype=np.float32).reshape(8, 8)))


def test_dotdot_in_a_url_or_key_writes_nothing_outside_the_cache(hostile, tmp_path, monkeypatch):
    "A server that serves a .gz for any path: '..' in the URL path or an S3 key is refused before any request."
    srv = hostile(lambda path, headers: (200, {"Content-Length": str(len(GZ_FITS))}, GZ_FITS))
    cache = tmp_path / "cache"
    monkeypatch.setenv("MWNB_CACHE_DIR", str(cache)); monkeypatch.setenv("MWNB_CACHE", "1")
    victim = tmp_path / "x"
    evil = [f"{srv.url}/a/../../../../{victim}/evil.fits.gz", f"{srv.url}/a/%2e%2e/%2E%2E/x/evil.fits.gz",
            f"s3://nasa-heasarc/a/../../../../{victim}/evil.fits.gz"]
    for url in evil:
        for call in (lambda: cached(url), lambda: cutout(url, (4, 4), 2), lambda: cloud.read_bytes(url),
                     lambda: download(url, tmp_path / "dl" / "evil.fits.gz", progress=False), lambda: open_fits(url)):
            with pytest.raises(UnsafePathError, match=r"'\.' or '\.\.' path segment"):
                call()
    with pytest.raises(UnsafePathError, match=r"the cloud_access key .*component '\.\.' is not a plain file name"):   # the same key from a cloud_access JSON
        cloud.cloud_uri(json.dumps({"aws": {"bucket_name": "nasa-irsa-wise", "key": "a/../../../tmp/x/evil.fits.gz"}}))
    assert srv.log == [] and not victim.exists() and files_under(tmp_path) == []
    good = cached(f"{srv.url}/a/b/good.fits.gz")                                   # the same server, a clean path: kept
    assert good.read_bytes() == GZ_FITS and good.is_relative_to(cache) and len(srv.log) == 1


def test_html_for_a_fits_url_is_not_kept(hostile, tmp_path, monkeypatch):
    "A maintenance page with 200 and a Content-Length, for a .fits URL: DownloadError naming the URL, nothing cached."
    page = b"<!DOCTYPE html>\n<html><body>Archive down for maintenance</body></html>\n"
    srv = hostile(lambda path, headers: (200, {"Content-Type": "text/html", "Content-Length": str(len(page))}, page))
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path / "cache"))
    url = srv.url + "/FTP/chandra/img.fits"
    for _ in range(2):   # the second call asks again: nothing was cached
        with pytest.raises(DownloadError, match="is not the fits file") as e:
            cached(url)
        assert url in str(e.value) and "<!DOCTYPE html>" in str(e.value)
    assert len(srv.log) == 2 and files_under(tmp_path) == []
    with pytest.raises(DownloadError, match="is not the gzip file"):
        download(srv.url + "/evt.fits.gz", tmp_path / "out" / "evt.fits.gz", progress=False)
    assert files_under(tmp_path) == []


def test_a_length_shorter_than_the_fits_file_is_not_kept(hostile, tmp_path, monkeypatch):
    "A Content-Length that matches what was sent but cuts the FITS file: incomplete, retried, then DownloadError."
    monkeypatch.setenv("MWNB_MAX_RETRIES", "1")
    body = fits_bytes(np.ones((60, 60)))[:-2880]
    srv = hostile(lambda path, headers: (200, {"Content-Length": str(len(body))}, body))
    with pytest.raises(DownloadError, match="incomplete"):
        download(srv.url + "/short.fits", tmp_path / "short.fits", progress=False)
    assert files_under(tmp_path) == [] and len(srv.log) == 2


def test_urls_from_servers_are_refused_before_any_request(hostile, tmp_path, archive):
    "file://, link-local and unconfigured loopback URLs: refused by every reader, a redirect to them too."
    untrusted = hostile(lambda path, headers: (200, {"Content-Length": "4"}, b"data"), trusted=False)
    bad = ["file:///etc/hostname", "http://169.254.169.254/latest/meta-data/iam/x.fits",
           "http://[fe80::1]/x.fits", untrusted.url + "/x.fits", "ftp://archive.example.org/x.fits"]
    for url in bad:
        for call in (lambda: download(url, tmp_path / "d" / "x.fits", progress=False), lambda: cached(url),
                     lambda: cloud.read_bytes(url), lambda: open_fits(url), lambda: cutout(url, (1, 1), 1)):
            with pytest.raises(UnsafePathError, match="refused"):
                call()
    # a DataLink '#this' row or a cloud_access entry that points at them
    dl = Table({"ID": ["ivo://x"], "access_url": ["file:///etc/hostname"], "semantics": ["#this"]})
    with pytest.raises(NoCloudCopyError, match="no cloud copy is known for 'file:///etc/hostname'"):
        cloud.cloud_uri(dl)
    dl["access_url"] = ["s3://nasa-heasarc/../../etc/hostname"]
    with pytest.raises(UnsafePathError, match=r"'\.\.'"):
        cloud.cloud_uri(dl)
    # the LAT client: a JSON API answering file:// URLs (mwnb.fermi downloads through cloud.download)
    from mwnb import fermi
    with pytest.raises(UnsafePathError, match="file:// is refused"):
        fermi.download_lat_file("file:///etc/hostname", tmp_path / "lat", progress=False)
    # a trusted server that redirects to a link-local address: the redirect is refused before it is followed
    redirect = hostile(lambda path, headers: (302, {"Location": "http://169.254.169.254/latest/x.fits", "Content-Length": "0"}, b""))
    for call in (lambda: download(redirect.url + "/x.fits", tmp_path / "r" / "x.fits", progress=False),
                 lambda: open_fits(redirect.url + "/x.fits"), lambda: cutout(redirect.url + "/x.fits", (1, 1), 1)):
        with pytest.raises(UnsafePathError, match="redirect .* link-local"):
            call()
    assert untrusted.log == [] and files_under(tmp_path) == []
    # the demo archive's endpoints are configured, so they pass
    url = archive.add_file("/heasarc/FTP/demo/allowed/a.fits", fits_bytes(np.ones((4, 4))))
    assert download(url, tmp_path / "ok" / "a.fits", progress=False).exists()


def test_a_206_without_content_range_is_a_download_error(hostile, tmp_path, monkeypatch):
    "The first GET is cut; the resumed GET is answered 206 with no Content-Range: a typed error, nothing kept."
    monkeypatch.setenv("MWNB_TIMEOUT", "2")   # the cut first answer is noticed at the read timeout
    body = np.random.default_rng(3).bytes(300_000)
    def answer(path, headers):
        if "Range" not in headers:
            return 200, {"Content-Length": str(len(body)), "ETag": '"v1"'}, iter([body[:100_000]])   # then the connection ends
        return 206, {"Content-Length": str(len(body) - 100_000), "ETag": '"v1"'}, body[100_000:]
    srv = hostile(answer)
    with pytest.raises(DownloadError, match="206 Partial Content with Content-Range None"):
        download(srv.url + "/a.bin", tmp_path / "a.bin", progress=False)
    assert files_under(tmp_path) == []


def test_an_endless_body_stops_at_the_size_limit(hostile, tmp_path, monkeypatch):
    monkeypatch.setattr(cloud, "_max_download_bytes", lambda: 2 << 20)
    srv = hostile(lambda path, headers: (200, {}, iter(lambda: b"\0" * 65536, None)))   # no length, never ends
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="more than 2097152 bytes"):
        download(srv.url + "/endless.fits", tmp_path / "endless.fits", progress=False)
    assert time.monotonic() - t0 < 30 and files_under(tmp_path) == []


def _drip(body, every=0.5):
    "A body sent one byte every `every` seconds."
    for i in range(len(body)):
        time.sleep(every); yield body[i:i + 1]


@pytest.fixture
def deadline_3s(monkeypatch):
    "An overall deadline of 3 s (conf.deadline when it exists, else the module's fallback) and a 2 s read timeout."
    from mwnb.config import conf
    monkeypatch.setenv("MWNB_DEADLINE", "3"); monkeypatch.setenv("MWNB_TIMEOUT", "2"); monkeypatch.setenv("MWNB_MAX_RETRIES", "2")
    if not hasattr(conf, "deadline"): monkeypatch.setattr(cloud, "_deadline", lambda: 3.0)
    return 3.0


def test_a_dripping_server_ends_a_download_and_a_cutout_within_the_deadline(hostile, tmp_path, deadline_3s):
    "One byte every 0.5 s never trips a 2 s read timeout; the 3 s deadline ends the download and the cutout."
    body = fits_bytes(np.ones((64, 64), np.float32))
    def answer(path, headers):
        if "Range" in headers:
            start, _, stop = headers["Range"][6:].partition("-")
            part = body[int(start):int(stop) + 1]
            return 206, {"Content-Length": str(len(part)), "Content-Range": f"bytes {start}-{int(start) + len(part) - 1}/{len(body)}"}, _drip(part)
        return 200, {"Content-Length": str(len(body))}, _drip(body)
    srv = hostile(answer)
    for call in (lambda: download(srv.url + "/drip.fits", tmp_path / "drip.fits", progress=False),
                 lambda: cutout(srv.url + "/drip.fits", (30, 30), 8)):
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match="within the 3 s deadline"):
            call()
        took = time.monotonic() - t0
        print(f"dripping server stopped after {took:.2f} s (deadline 3 s)")
        assert took < deadline_3s + 1.5
    assert files_under(tmp_path) == []


def test_a_read_only_cache_reads_uncached_with_one_warning(tiny, tmp_path, monkeypatch):
    "A cache folder that cannot be created (its parent is a file): correct bytes, one warning, nothing in the cache."
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path / "file" / "cache"))
    payload = fits_bytes(np.full((10, 10), 3.0))
    urls = [tiny.add(f"/ro/{n}.fits", payload) for n in ("a", "b")]
    with pytest.warns(UserWarning, match="cannot be written") as caught:
        got = [cached(u).read_bytes() for u in urls]
    assert got == [payload, payload] and len([w for w in caught if "cannot be written" in str(w.message)]) == 1


def test_credentials_are_redacted_from_errors_and_the_cache_record(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path / "cache"))
    payload = fits_bytes(np.ones((5, 5)))
    url = tiny.add("/cred/a.fits", payload).replace("http://", "http://alice:s3cret@")
    path = cached(url)
    assert "s3cret" not in cache_paths(url)[1].read_text() and "***@" in cache_paths(url)[1].read_text()
    assert cached(url) == path                                                        # the record still matches
    with pytest.raises(UnsafePathError) as e:
        download("http://bob:hunter2@169.254.169.254/x.fits", tmp_path / "x.fits")
    assert "hunter2" not in str(e.value) and "***@169.254.169.254" in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        download(tiny.url.replace("http://", "http://bob:hunter2@") + "/nothere.fits", tmp_path / "n.fits", progress=False)
    assert "hunter2" not in str(e.value)


GZ_BIG = gzip.compress(fits_bytes(np.random.default_rng(11).normal(size=(700, 700)).astype(np.float32)), compresslevel=1)
FETCH_SHA = ("import sys, hashlib; from mwnb import cloud; cloud.trust_host(sys.argv[1]); "
             "print(hashlib.sha256(cloud.{fn}(sys.argv[2]{extra}).read_bytes()).hexdigest())")


def _slow_gzip_server(hostile, pause):
    "Serves GZ_BIG (with its length) in 64 kB blocks, `pause[0]` s between blocks (a list: a test may change it)."
    def answer(path, headers):
        def blocks():
            for i in range(0, len(GZ_BIG), 65536): time.sleep(pause[0]); yield GZ_BIG[i:i + 65536]
        return 200, {"Content-Length": str(len(GZ_BIG))}, blocks()
    return hostile(answer)


def test_two_processes_fetch_one_gzip_and_a_killed_one_leaves_nothing_accepted(hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path / "cache"))
    srv = _slow_gzip_server(hostile, pause=[0.01])
    url = srv.url + "/obs/events.fits.gz"
    code = FETCH_SHA.format(fn="cached", extra="")
    procs = [subprocess.Popen([sys.executable, "-c", code, srv.url, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    assert [o[0].strip() for o in outs] == [sha(GZ_BIG)] * 2                          # both end with the right bytes
    assert parts_left(tmp_path) == []
    # a process killed in the middle of filling a cache entry: what it leaves is never taken for the file
    pause = [0.2]
    slow = _slow_gzip_server(hostile, pause=pause)
    url2 = slow.url + "/obs/other.fits.gz"
    p = subprocess.Popen([sys.executable, "-c", code, slow.url, url2], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not parts_left(tmp_path): time.sleep(0.1)
    time.sleep(0.5); p.kill(); p.wait()
    assert parts_left(tmp_path) and not cache_paths(url2)[0].exists() and not cache_paths(url2)[1].exists()
    pause[0] = 0.0
    assert sha(cached(url2).read_bytes()) == sha(GZ_BIG) and parts_left(tmp_path) == []   # fetched whole; the part removed
    # the same for download(): a killed process's part is never renamed, and the next call removes it
    dest = tmp_path / "dl" / "other.fits.gz"
    pause[0] = 0.2
    p = subprocess.Popen([sys.executable, "-c", FETCH_SHA.format(fn="download", extra=f", {str(dest)!r}, progress=False"),
                          slow.url, url2], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not dest.parent.exists() or not parts_left(dest.parent): time.sleep(0.1)
    p.kill(); p.wait()
    assert not dest.exists()
    pause[0] = 0.0
    assert sha(download(url2, dest, progress=False).read_bytes()) == sha(GZ_BIG)
    assert parts_left(dest.parent) == []


def test_an_s3_cache_entry_belongs_to_its_endpoint(monkeypatch):
    "The same s3:// URI read from the demo archive's S3 and from AWS are two cache entries: a stand-in never serves a live run."
    uri = "s3://nasa-heasarc/caldb/data/swift/xrt/index/caldb.indx"
    monkeypatch.setenv("MWNB_S3_ENDPOINT", "http://127.0.0.1:5999")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    demo = cache_paths(uri)[0]
    monkeypatch.setenv("MWNB_S3_ENDPOINT", "")
    aws = cache_paths(uri)[0]
    assert demo != aws and demo.name == aws.name == "caldb.indx"


def test_importing_cloud_loads_no_network_client_or_astropy_table():
    "`import mwnb.cloud` stays light: s3fs, requests, pyvo and astropy's tables and FITS come with the first call."
    out = subprocess.run([sys.executable, "-c", "import sys; import mwnb.config; "
                          "mods = set(sys.modules); import mwnb.cloud; print(sorted(set(sys.modules) - mods))"],
                         capture_output=True, text=True, check=True).stdout
    heavy = [x for x in eval(out) if x.split(".")[0] in ("requests", "s3fs", "pyvo", "aiohttp", "tqdm")
             or x in ("astropy.io.fits", "astropy.table", "astropy.coordinates", "astropy.time", "astropy.units",
                      "astropy.wcs", "astropy.nddata")]
    assert heavy == []
