"""Chandra ACIS events to images and sources: detection on real ACIS events and a real image, region files, the
quick-look spectrum and its plot, wavdetect stopped or named when it fails, position errors, the image display."""
import os
import numpy as np
import pytest
import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable
from scipy.ndimage import gaussian_filter, maximum_filter

from mwnb import xray_images
from mwnb.config import data_dir


EVENTS = str(data_dir() / "stingray-chandra-events" / "chandra_test.fits")   # real ACIS events of M82 (ObsID 10027)


def _peaks(image, n, box=7, smooth=1.0, floor=5):
    "The `n` brightest local maxima (x, y) of a lightly smoothed image."
    sm = gaussian_filter(np.asarray(image, float), smooth)
    pk = np.argwhere((sm == maximum_filter(sm, box)) & (sm > floor))
    pk = pk[np.argsort(-sm[tuple(pk.T)])][:n]
    return [(x, y) for y, x in pk]


@pytest.fixture(scope="module")
def demo_uris(local_archive):
    from mwnb.demo.fermi import chandra_demo_uris
    return chandra_demo_uris()


def test_detection_on_real_events_finds_bright_sources(demo_uris, tmp_path):
    ev = xray_images.read_events(demo_uris["events"])
    assert len(ev) == 4612
    images, wcs = xray_images.band_images(ev, binsize=2)
    broad = sum(images.values())
    src = xray_images.detect_sources(broad, wcs, engine="photutils")
    assert src.meta["engine"] == "photutils" and len(src) >= 3
    for (px, py), s in zip(_peaks(broad, 2), src[:2]):          # brightest sources sit on the brightest peaks
        assert np.hypot(s["x"] - px, s["y"] - py) < 1.5
    # independent check of the brightest source's counts: events within 3 binned pixels (6 sky px)
    sky = xray_images.events_wcs(ev.meta).pixel_to_world(np.asarray(ev["x"]) - 1, np.asarray(ev["y"]) - 1)
    e = np.asarray(ev["energy"])
    n_near = ((sky.separation(SkyCoord(src["ra"][0], src["dec"][0])) < 6 * 0.492 * u.arcsec) & (e >= 500) & (e < 7000)).sum()
    assert abs(src["counts"][0] - n_near) <= 0.1 * n_near
    files = xray_images.save_sources(src, tmp_path)
    text = files["regions"].read_text()
    assert text.count("circle(") == len(src) and "# Region file format: DS9" in text
    assert QTable.read(files["table"])["ra"].unit == u.deg


def test_detection_on_real_image_matches_peak(demo_uris, tmp_path):
    img, wcs = xray_images.read_image(demo_uris["image"])
    src = xray_images.detect_sources(img, wcs)                      # auto: wavdetect when CIAO is installed
    assert src.meta["engine"] == xray_images.detection_engine()
    (px, py), = _peaks(img, 1)
    assert np.hypot(src["x"][0] - px, src["y"][0] - py) < 1.5
    psr = SkyCoord("18h33m33.57s -10d34m07.5s")                 # PSR J1833-1034 in G21.5-0.9
    assert SkyCoord(src["ra"][0], src["dec"][0]).separation(psr) < 2 * u.arcsec
    xray_images.write_ds9_regions(src, tmp_path / "g21.reg")
    from regions import Regions
    assert len(Regions.read(tmp_path / "g21.reg", format="ds9")) == len(src)


def test_spectrum_plot_y_axis_is_scaled_to_the_data():
    "Brightest source, and a point 8 arcsec off it whose background annulus holds the source (negative net bins)."
    ev = xray_images.read_events(EVENTS)
    images, wcs = xray_images.band_images(ev, binsize=2)
    src = xray_images.detect_sources(sum(images.values()), wcs, engine="photutils")
    bright = SkyCoord(src["ra"][0], src["dec"][0])
    for pos in (bright, bright.directional_offset_by(0 * u.deg, 8 * u.arcsec)):
        spec = xray_images.source_spectrum(ev, pos)
        rate, err = spec["rate"].value, spec["rate_err"].value
        lo, hi = xray_images.plot_spectrum(spec).axes[0].get_ylim()
        data_lo, data_hi = min(0, (rate - err).min()), max(0, (rate + err).max())
        assert lo <= data_lo and hi >= data_hi                          # every point and error bar is on the plot
        assert (hi - lo) <= 1.25 * (data_hi - data_lo)                 # and the axis is not decades wider
    spec = xray_images.source_spectrum(ev, bright)
    assert 0.03 < spec["rate"].value.max() < 0.04                       # the M82 nucleus: a rate below 0.04 /s/keV
    assert (spec["net_counts"] < 0).sum() >= 1 and np.all(spec["rate_err"].value < 0.01)   # negative bins get sane errors


def _fake_wavdetect(tmp_path, monkeypatch, body):
    bin_dir = tmp_path / "bin"; bin_dir.mkdir()
    (bin_dir / "wavdetect").write_text("#!/bin/sh\n" + body + "\n"); (bin_dir / "wavdetect").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_wavdetect_is_stopped_after_the_subprocess_timeout(tmp_path, monkeypatch):
    import time
    from mwnb.errors import MwnbError
    _fake_wavdetect(tmp_path, monkeypatch, "sleep 30")
    monkeypatch.setenv("MWNB_SUBPROCESS_TIMEOUT", "1")
    assert xray_images.detection_engine() == "wavdetect"
    t0 = time.time()
    with pytest.raises(MwnbError, match="conf.subprocess_timeout = 1.0 s"):
        xray_images.detect_sources(np.ones((32, 32)), xray_images.events_wcs(xray_images.read_events(EVENTS).meta), workdir=tmp_path / "w")
    assert time.time() - t0 < 10


def test_failed_wavdetect_names_its_error(tmp_path, monkeypatch):
    from mwnb.errors import MwnbError
    _fake_wavdetect(tmp_path, monkeypatch, "echo 'ERROR: no CALDB' >&2; exit 3")
    with pytest.raises(MwnbError, match=r"exit 3\): ERROR: no CALDB"):
        xray_images.detect_wavdetect(np.ones((32, 32)), xray_images.events_wcs(xray_images.read_events(EVENTS).meta), workdir=tmp_path / "w")


def test_position_errors_follow_kim_2007_and_grow_off_axis(m82_sources):
    src, _, _, ev = m82_sources
    assert src.meta["aim_point_from"] == "RA_PNT/DEC_PNT"
    aim = SkyCoord(ev.meta["RA_PNT"] * u.deg, ev.meta["DEC_PNT"] * u.deg)
    theta = SkyCoord(src["ra"], src["dec"]).separation(aim).arcmin
    assert np.allclose(src["off_axis"].to_value(u.arcmin), theta, atol=1e-9) and 3.0 < theta.min() and theta.max() < 4.2
    c = np.asarray(src["net_counts"], float)
    logc = np.minimum(np.log10(c), 3.3)
    by_hand = 10 ** np.where(logc <= 2.1393, 0.1145 * theta - 0.4958 * logc + 0.1932, 0.0968 * theta - 0.2064 * logc - 0.4260)
    assert np.allclose(src["pos_err_95_stat"].to_value(u.arcsec), by_hand, rtol=1e-12)
    assert 0.18 < src["pos_err_95_stat"][0].to_value(u.arcsec) < 0.19          # 1499 net counts at 3.6': 0.186"
    # absolute astrometry (90% 1.11" -> 95% 1.266") in quadrature
    assert np.allclose(src["pos_err_95"].value, np.hypot(by_hand, 1.11 * np.sqrt(np.log(0.05) / np.log(0.1))), rtol=1e-12)
    # same counts further off axis: larger; more counts at the same angle: smaller
    assert xray_images.positional_error_95(30, 9.0) > 3 * xray_images.positional_error_95(30, 3.0)
    assert xray_images.positional_error_95(300, 5.0) < xray_images.positional_error_95(30, 5.0)


def test_the_image_display_is_hot_log_scaled_and_circles_every_source(m82_sources, tmp_path):
    src, broad, wcs, _ = m82_sources
    fig = xray_images.plot_image(broad, wcs, sources=src, highlight=2, path=tmp_path / "img.png")
    im = fig.axes[0].images[0]
    assert im.get_cmap().name == "hot" and type(im.norm).__name__ == "LogNorm" and im.origin == "lower"
    assert im.norm.vmax == broad.max() and len(fig.axes[0].patches) == len(src)
    assert (tmp_path / "img.png").stat().st_size > 20_000


@pytest.fixture(scope="module")
def m82_sources():
    "Real M82 events (the demo's stand-in for ObsID 1990): photutils sources with their 95% position errors."
    ev = xray_images.read_events(EVENTS)
    images, wcs = xray_images.band_images(ev, binsize=2)
    broad = sum(images.values())
    return xray_images.add_position_errors(xray_images.detect_sources(broad, wcs, engine="photutils"), ev.meta), broad, wcs, ev


def _separations(ev, position):
    "Angular separation (arcsec) of every event from `position`, through astropy's WCS and SkyCoord (not sky pixels)."
    w = xray_images.events_wcs(ev.meta)
    ra, dec = w.pixel_to_world_values(np.asarray(ev["x"], float) - 1, np.asarray(ev["y"], float) - 1)
    return SkyCoord(ra, dec, unit="deg").separation(position).arcsec


def test_region_spectrum_matches_an_independent_count_and_area_ratio(m82_sources, tmp_path):
    from astropy.io import fits
    src, _, _, ev = m82_sources
    pos = SkyCoord(src["ra"][0], src["dec"][0])
    got = xray_images.region_spectrum(ev, pos, tmp_path, radius=40.0, bkg_radii=(60.0, 90.0), stem="pwn")
    sep = _separations(ev, pos)
    n_src, n_bkg = int((sep < 40).sum()), int(((sep >= 60) & (sep < 90)).sum())
    assert n_src > 1000 and n_bkg > 50                            # real numbers on the M82 field, not an empty region
    with fits.open(got["pha"]) as h, fits.open(got["bkg"]) as b:
        s, bk = h["SPECTRUM"], b["SPECTRUM"]
        assert int(s.data["COUNTS"].sum()) == n_src and int(bk.data["COUNTS"].sum()) == n_bkg
        assert np.isclose(s.header["BACKSCAL"] / bk.header["BACKSCAL"], 40**2 / (90**2 - 60**2), rtol=1e-9)
        assert s.header["BACKFILE"] == "pwn_bkg.pi" and s.header["HDUCLAS2"] == "TOTAL" and bk.header["HDUCLAS2"] == "BKG"
        assert s.header["EXPOSURE"] == ev.meta["EXPOSURE"] and s.header["CHANTYPE"] == "PI" and s.header["POISSERR"]
        assert list(s.data["CHANNEL"][[0, -1]]) == [1, 1024]
        # the PI histogram itself, channel by channel
        pi = np.asarray(ev["pi"], int)[sep < 40]
        assert np.array_equal(s.data["COUNTS"], np.bincount(pi - 1, minlength=1024))
        assert "MWNBDEMO" not in h[0].header and "MWNBDEMO" not in s.header   # the raw shared file carries no stand-in label
    assert got["outside_extent"] == {"source": 0.0, "background": 0.0} and got["warnings"] == []   # the file spans ~400"
    # regions 20 sky pixels inside the events' right-hand edge: about half of each lies off the data, and the result says so
    w = xray_images.events_wcs(ev.meta)
    edge = SkyCoord(*w.pixel_to_world_values(float(np.max(ev["x"])) - 20 - 1, float(np.median(ev["y"])) - 1), unit="deg")
    off = xray_images.region_spectrum(ev, edge, tmp_path / "edge", radius=40.0, bkg_radii=(60.0, 90.0))
    assert 0.3 < off["outside_extent"]["source"] < 0.5 and 0.4 < off["outside_extent"]["background"] < 0.6
    assert any("of the background region lies outside the event list's extent" in x for x in off["warnings"])
    with fits.open(off["pha"]) as h: assert any("WARNING" in str(x) for x in h[1].header["HISTORY"])
    with pytest.raises(xray_images.BadParameterError, match="inner"):
        xray_images.region_spectrum(ev, pos, tmp_path, radius=70.0, bkg_radii=(60.0, 90.0))


def test_products_from_labelled_stand_in_events_say_so_and_real_ones_do_not(demo_uris, m82_sources, tmp_path):
    from astropy.io import fits
    from mwnb.provenance import stand_in_of
    labelled = xray_images.read_events(demo_uris["events"])          # the demo archive's M82 events, MWNBDEMO in the header
    src, _, _, raw = m82_sources                                      # the same events from shared/data, no label
    pos = SkyCoord(src["ra"][0], src["dec"][0])
    for ev, sub, want in ((labelled, "demo", True), (raw, "real", False)):
        got = xray_images.region_spectrum(ev, pos, tmp_path / sub, radius=20.0, bkg_radii=(30.0, 60.0))
        with fits.open(got["pha"]) as h, fits.open(got["bkg"]) as b:
            assert bool(stand_in_of(h[0].header)) == want and bool(stand_in_of(b["SPECTRUM"].header)) == want
        assert ("MWNBDEMO" in got["label"]) == want
        plain = QTable(src, copy=True); plain.meta.pop("MWNBDEMO", None)
        files = xray_images.save_sources(plain, tmp_path / sub, inputs=(ev.meta,))
        assert ("MWNBDEMO" in QTable.read(files["table"]).meta) == want
        assert ("MWNBDEMO" in xray_images.add_position_errors(plain, ev.meta).meta) == want
