"""Cloud cutouts (mwnb.cutouts) on the local S3: bytes and requests counted at the server, pixels and WCS
against astropy's Cutout2D of a full local read."""
import gzip, io, time
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.table import Table
from astropy.wcs import WCS
from mwnb.cutouts import cutout, cutouts, BLOCK, HEADER_BYTES, _tile_rows
from mwnb.demo.cutout_benchmark import demo_image_bytes, astropy_cutout


@pytest.fixture(scope="module")
def s3():
    "A local archive with no demo content: moto S3 (byte-counting, latency injectable) on 127.0.0.1."
    from mwnb.demo.archive import LocalArchive
    with LocalArchive(populate=False) as la:
        yield la


@pytest.fixture(scope="module")
def big(s3):
    "The 64 MiB float32 4096 x 4096 image: its bytes and S3 URI."
    data = demo_image_bytes(4096)
    return data, s3.put_object("cutout-test", "image.fits", data)


def _reference(data, position, size, hdu=0):
    with fits.open(io.BytesIO(data)) as hdul:
        return Cutout2D(hdul[hdu].data, position, size, wcs=WCS(hdul[hdu].header))


def test_one_cutout_reads_the_physical_minimum_in_two_round_trips(s3, big):
    data, uri = big
    position = SkyCoord(150.01, 2.21, unit="deg")
    s3.s3.latency = 0
    s3.s3.reset()
    c = cutout(uri, position, 128)
    minimum = 128 * 128 * 4 + BLOCK          # pixel rows + the one header block
    assert s3.s3.bytes_sent == HEADER_BYTES + 128 * 128 * 4 <= 1.5 * minimum
    assert len(s3.s3.log) == 1 + 128 and c.fetch["round_trips"] == 2   # header, then all rows at once
    ref = _reference(data, position, 128)
    assert np.array_equal(c.data, ref.data) and c.slices_original == ref.slices_original
    assert c.wcs.to_header() == ref.wcs.to_header()


@pytest.mark.parametrize("xy", [(3.4, 4090.2), (4095.0, 20.0), (-30.0, -40.0)])
def test_cutout_over_the_edge_is_cutout2d(s3, big, xy):
    data, uri = big
    c, ref = cutout(uri, xy, 128), _reference(data, xy, 128)
    assert c.shape == ref.shape and c.shape != (128, 128)
    assert np.array_equal(c.data, ref.data) and c.wcs.to_header() == ref.wcs.to_header()
    p, pref = cutout(uri, xy, 128, mode="partial"), Cutout2D(fits.getdata(io.BytesIO(data)), xy, 128, mode="partial")
    assert np.array_equal(p.data, pref.data, equal_nan=True)


def test_https_cutout_is_polite_and_minimal(big):
    "A threaded range server with 50 ms latency: <= 1.5x the physical minimum, <= 16 requests in flight, the same count every run."
    from mwnb import cloud
    from mwnb.demo.cutout_benchmark import RangeServer
    data, _ = big
    srv = RangeServer(latency=0.05)
    try:
        url = srv.add("/big/image.fits", data)
        cloud.trust_host(srv.url)
        position, minimum = SkyCoord(150.01, 2.21, unit="deg"), 128 * 128 * 4 + BLOCK
        counts = []
        for _ in range(3):
            srv.reset()
            c = cutout(url, position, 128)
            counts.append(srv.requests)
            assert srv.bytes_sent <= 1.5 * minimum, srv.bytes_sent
            assert 1 < srv.peak <= 16, srv.peak                                    # concurrent, and politely so
        assert counts == [129] * 3 and c.fetch["requests"] == 129              # header + one request per row, no retries
        assert np.array_equal(c.data, _reference(data, position, 128).data)
    finally:
        srv.stop()


@pytest.mark.parametrize("compression,tile_shape", [("RICE_1", None), ("RICE_1", (64, 64)), ("GZIP_1", (100, 50))])
def test_compressed_image_reads_only_the_intersecting_tiles(s3, compression, tile_shape):
    image = np.random.default_rng(5).normal(100, 10, (1024, 1024)).astype(np.float32)
    hdr = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.2, "CRPIX1": 512.5,
                       "CRPIX2": 512.5, "CDELT1": -0.25 / 3600, "CDELT2": 0.25 / 3600})
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, hdr, compression_type=compression, tile_shape=tile_shape)]).writeto(out)
    data = out.getvalue()
    uri = s3.put_object("cutout-test", f"c_{compression}_{tile_shape}.fits", data)
    xy = (300.3, 700.8)
    s3.s3.reset()
    c = cutout(uri, xy, 100)
    with fits.open(io.BytesIO(data)) as full:
        ref = Cutout2D(full[1].data, xy, 100, wcs=WCS(full[1].header))
    assert np.array_equal(c.data, ref.data) and c.wcs.to_header() == ref.wcs.to_header()
    # expected bytes, from astropy's own reading of the tile table: the header request, the table rows of the
    # intersecting tiles, and those tiles' compressed bytes
    with fits.open(io.BytesIO(data), disable_image_compression=True) as raw:
        table, h = raw[1], raw[1].header
        rows = _tile_rows(h, ref.slices_original)
        sizes = []
        for r in rows:
            for name in ("COMPRESSED_DATA", "GZIP_COMPRESSED_DATA", "UNCOMPRESSED_DATA"):
                if name in table.columns.names:
                    sizes.append(table.data.field(name)[r].nbytes)
    expected = HEADER_BYTES + len(rows) * h["NAXIS1"] + sum(sizes)
    assert abs(s3.s3.bytes_sent - expected) <= BLOCK, (s3.s3.bytes_sent, expected)
    assert c.fetch["round_trips"] == 3 and len(rows) < np.prod([-(-1024 // t) for t in (tile_shape or (1, 1024))])


def test_gzip_file_is_read_whole_once_then_cut(s3, tmp_path, monkeypatch, capsys):
    import gzip
    from mwnb.config import conf
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path / "cache")); monkeypatch.setenv("MWNB_CACHE", "1")
    data = demo_image_bytes(256)
    uri = s3.put_object("cutout-test", "small.fits.gz", gzip.compress(data))
    position = SkyCoord(150.0, 2.2, unit="deg")
    c = cutout(uri, position, 32, progress=False)
    assert "cannot be read in part" in capsys.readouterr().out
    assert c.fetch["whole_file"] and np.array_equal(c.data, _reference(data, position, 32).data)
    s3.s3.reset()
    cutout(uri, position, 32, progress=False)                  # second time: from the cache, no GET
    assert s3.s3.bytes_sent == 0 and "cannot be read" not in capsys.readouterr().out
    monkeypatch.setenv("MWNB_CACHE", "0")                      # the cache off: read again, nothing written anywhere
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path / "off"))
    s3.s3.reset()
    assert np.array_equal(cutout(uri, position, 32, progress=False).data, c.data)
    assert s3.s3.bytes_sent == len(gzip.compress(data)) and not (tmp_path / "off").exists()


def test_many_cutouts_with_every_status_share_the_host_slots(s3):
    "A batch: one row per input with its status; the header of each image read once; requests counted, no retries."
    from mwnb import cloud
    uris = [s3.put_object("cutout-test", f"many/{i}.fits", demo_image_bytes(2048, seed=i, ra=150.0 + i)) for i in range(3)]
    rng = np.random.default_rng(1)
    n = 60
    t = Table({"uri": [uris[i % 3] for i in range(n)], "ra": [150.0 + i % 3 for i in range(n)] + rng.uniform(-0.05, 0.05, n),
               "dec": 2.2 + rng.uniform(-0.05, 0.05, n)})
    t.add_row(("s3://cutout-test/many/missing.fits", 150.0, 2.2))
    t.add_row((uris[0], 30.0, -60.0))                          # far off the image
    slots = cloud.host_slots(uris[0])
    s3.s3.reset()
    out = cutouts(t, 128, progress=False)
    assert len(out) == n + 2 and list(out["status"][:n]) == ["ok"] * n
    assert out["status"][n].startswith("FileNotFoundError") and out["status"][n + 1].startswith("BadCoordinatesError")
    assert out["cutout"][n] is None and out["cutout"][0].shape == (128, 128)
    assert len(s3.s3.log) == int(out["requests"][:n].sum()) + 1   # every request is a cutout's, plus the missing file's one try
    assert slots.peak <= slots.n
    for i in range(3):
        ref = _reference(demo_image_bytes(2048, seed=i, ra=150.0 + i), SkyCoord(t["ra"][i], t["dec"][i], unit="deg"), 128)
        assert np.array_equal(out["cutout"][i].data, ref.data)
