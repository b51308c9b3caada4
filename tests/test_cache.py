"""Issue 9 acceptance: a cache that cannot lie, downloads that never keep a partial file, safe paths, no hangs."""
import hashlib, io, json, logging, os, subprocess, sys, threading, time
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

from mwnb.cloud import cached, cache_paths, check_fits, cutout, download, open_fits, s3_filesystem
from mwnb.errors import ArchiveUnavailableError, BadInputFileError, DownloadError, UnsafePathError
from mwnb import swift


def sha(b): return hashlib.sha256(b).hexdigest()


def fits_bytes(data, header=None):
    buf = io.BytesIO(); fits.PrimaryHDU(data, header=header).writeto(buf); return buf.getvalue()


class TinyServer:
    """An http server on 127.0.0.1 whose files can carry an ETag, omit Content-Length, be cut off, or change
    after a cut; it honours `Range` and `If-Range` (a Range is served only when If-Range matches the ETag)."""
    def __init__(self):
        self.files, self.log = {}, []
        tiny = self
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def do_HEAD(self): self.serve()
            def do_GET(self): self.serve()
            def serve(self):
                tiny.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "status": None})
                f = tiny.files.get(self.path)
                if f is None:
                    self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
                body, etag = f["body"], f.get("etag")
                rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
                start = int(rng[6:].split("-")[0]) if rng and (if_range is None or if_range == etag) else None
                part = body if start is None else body[start:]
                cut = self.command == "GET" and f.get("cuts", 0) > 0
                if cut: f["cuts"] -= 1
                tiny.log[-1]["status"] = 200 if start is None else 206
                self.send_response(200 if start is None else 206)
                if etag: self.send_header("ETag", etag)
                if start is not None: self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                if f.get("length", True): self.send_header("Content-Length", str(len(part)))
                else: self.send_header("Connection", "close")   # no length: the body ends when the connection does
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(part[:len(part) // 3] if cut else part)
                    self.wfile.flush()
                if cut or not f.get("length", True): self.close_connection = True
                if cut and f.get("after_cut"): f.pop("after_cut")(f)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, path, body, **kw):
        self.files[path] = dict(body=body, **kw)
        return self.url + path

    def gets(self, path): return [r for r in self.log if r["path"] == path and r["method"] == "GET"]

    def stop(self): self.server.shutdown(); self.server.server_close()


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    s = TinyServer()
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


# 5. server-given names: a listed S3 key with '..' and malformed ObsIDs are refused before anything is written
def test_listed_key_with_dotdot_is_refused(archive, tmp_path):
    obs = "swift/data/obs/2011_08/00099999999"
    archive.put_object("nasa-heasarc", f"{obs}/xrt/ok.txt", b"ok")
    archive.put_object("nasa-heasarc", f"{obs}/xrt/../../../../../../escape.txt", b"escaped")
    assert any(".." in k for k in s3_filesystem().find(f"nasa-heasarc/{obs}/xrt"))   # the listing really has it
    with pytest.raises(UnsafePathError, match=r"'\.\.'"):
        swift.download_observation(f"s3://nasa-heasarc/{obs}/", tmp_path / "dest", subdirs=("xrt",))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []                     # not even ok.txt


def test_malformed_obsids_are_refused(archive, tmp_path):
    with pytest.raises(UnsafePathError, match="not a Swift ObsID"):
        swift.swift_obs_uri("0003196805/..", 55788.6)
    with pytest.raises(UnsafePathError, match="not a Swift ObsID"):
        swift.download_observation("s3://nasa-heasarc/swift/data/obs/2011_08/..", tmp_path)
    archive.add_table("swiftbad", Table({"obsid": ["00031968059", "../../../tmp/x"], "name": ["T Pyx"] * 2,
                                         "ra": [136.17, 136.17], "dec": [-32.38, -32.38], "start_time": [55700.0, 55701.0],
                                         "xrt_exposure": [1e3, 1e3]}))
    with pytest.raises(UnsafePathError, match="tmp/x"):
        swift.query_swift_observations(136.17, -32.38, catalog="swiftbad")
    row = swift.process_observation("../../x", tmp_path / "data", tmp_path / "work", 136.17, -32.38, "s.reg", "b.reg")
    assert (row["status"], row["failed_task"]) == ("failed", "obsid") and not (tmp_path / "work").exists()


def test_swift_adql_gets_numpy_values_as_plain_numbers(archive):
    t = swift.query_swift_observations(np.float64(136.17292), np.float64(-32.37986), radius_arcmin=np.float32(12.0))
    q = t.meta["query"]
    assert "np." not in q and "CIRCLE('ICRS', 136.17292, -32.37986, 0.2)" in q
    # as many rows as the demo's swiftmastr has within 0.2 deg, counted independently with astropy
    from astropy.coordinates import SkyCoord
    from mwnb.demo.swift import tpyx_master_table
    demo = tpyx_master_table()
    near = SkyCoord(demo["ra"], demo["dec"], unit="deg").separation(SkyCoord(136.17292, -32.37986, unit="deg")).deg <= 0.2
    assert len(t) == int(near.sum()) > 0


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


# hangs: every client has a timeout, and a HEASoft tool that hangs is stopped with its children
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


def test_a_hung_heasoft_tool_is_stopped_with_its_children(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"; bin_dir.mkdir()
    tool = bin_dir / "xrtexpomap"
    tool.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {tmp_path}/child.pid\nsleep 60\n"); tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("MWNB_SUBPROCESS_TIMEOUT", "1")
    t0 = time.time()
    with pytest.raises(swift.HeasoftTaskError, match="did not finish within 1 s"):
        swift.run_task("xrtexpomap", {"infile": "x"}, tmp_path / "task")
    assert time.time() - t0 < 5
    child = int((tmp_path / "child.pid").read_text())
    time.sleep(0.2)
    state = Path(f"/proc/{child}/stat").read_text().split()[2] if Path(f"/proc/{child}").exists() else "gone"
    assert state in ("gone", "Z"), state                                             # the grandchild died too
    assert "stopped after 1 s" in (tmp_path / "task" / "xrtexpomap.log").read_text()


def test_imports_are_light():
    for m in ("cloud", "swift"):
        out = subprocess.run([sys.executable, "-c", "import sys; import mwnb.config; "
                              f"mods = set(sys.modules); import mwnb.{m}; print(sorted(set(sys.modules) - mods))"],
                             capture_output=True, text=True, check=True).stdout
        loaded = eval(out)
        heavy = [x for x in loaded if x.split(".")[0] in ("requests", "s3fs", "pyvo", "aiohttp", "tqdm")
                 or x in ("astropy.io.fits", "astropy.table", "astropy.coordinates", "astropy.time", "astropy.units",
                          "astropy.wcs", "astropy.nddata")]
        assert heavy == [], (m, heavy)
