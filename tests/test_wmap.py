"""WMAP from LAMBDA's cloud copy: the URL -> S3 rule, RING/NESTED and *_STOKES/*_POLARISATION maps read
through the local nasa-lambda bucket, aperture photometry against an independent calculation, figures."""
import io

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from mwnb import wmap
from mwnb.config import data_dir
from mwnb.contracts import layout
from mwnb.errors import BadInputFileError, BadParameterError, NoCloudCopyError

B0453 = (73.39, -68.49)
W_FILE = data_dir() / "healpy-wmap" / "wmap_band_iqumap_r9_7yr_W_v4_udgraded32.fits"
NESTED_KEY = "wmap/mwnb-test/wmap_iqumap_nested_polarisation.fits"


def _wmap_style_copy(nested: bool, polarisation_names: bool) -> bytes:
    "The shared W-band map rewritten with WMAP's keywords, in NESTED or RING order, with *_POLARISATION or *_STOKES names."
    with fits.open(W_FILE) as h:
        names = ("TEMPERATURE", "Q_POLARISATION", "U_POLARISATION") if polarisation_names else ("I_STOKES", "Q_STOKES", "U_STOKES")
        cols = []
        for name, src, unit in zip(names, ("I_STOKES", "Q_STOKES", "U_STOKES"), ("mK", "mK,thermodynamic", "mK,thermodynamic")):
            v = np.asarray(h[1].data[src], np.float32).ravel()
            cols.append(fits.Column(name=name, format="E", unit=unit, array=hp.reorder(v, r2n=True) if nested else v))
    t = fits.BinTableHDU.from_columns(cols)
    t.header.update(PIXTYPE="HEALPIX", ORDERING="NESTED" if nested else "RING", NSIDE=32)
    p = fits.PrimaryHDU()
    p.header.update(TELESCOP="WMAP", FREQ="W band")
    buf = io.BytesIO(); fits.HDUList([p, t]).writeto(buf)
    return buf.getvalue()


@pytest.fixture
def lambda_bucket(archive):
    "The session archive with the WMAP stand-in and a NESTED *_POLARISATION copy of it in the local nasa-lambda bucket."
    from mwnb.demo.wmap import populate
    populate(archive)   # idempotent; also loaded at start once "wmap" is in DEMO_CONTENT
    nested = archive.put_object(wmap.LAMBDA_BUCKET, NESTED_KEY, _wmap_style_copy(nested=True, polarisation_names=True), https=False)
    return {"ring": wmap.WMAP_K_IQU_URL, "nested": nested}


def test_lambda_url_to_s3_on_the_contract_example():
    https, s3 = layout("lambda_wmap")["examples"][0].split(" -> ")
    assert wmap.lambda_s3_uri(https) == s3 == "s3://nasa-lambda/wmap/dr5/skymaps/9yr/smoothed/wmap_band_smth_iqumap_r9_9yr_K_v5.fits"
    assert wmap.lambda_s3_uri(wmap.WMAP_K_IQU_URL) == s3
    assert wmap.lambda_s3_uri("https://lambda.gsfc.nasa.gov/data/cobe/firas/x.fits") == "s3://nasa-lambda/cobe/firas/x.fits"
    with pytest.raises(NoCloudCopyError):
        wmap.lambda_s3_uri("https://heasarc.gsfc.nasa.gov/FTP/rosat/x.fits")


def test_ring_and_nested_give_the_same_aperture_value_through_s3(lambda_bucket):
    ring = wmap.read_wmap_map(lambda_bucket["ring"])          # the LAMBDA URL, read from s3://nasa-lambda/wmap/...
    nested = wmap.read_wmap_map(lambda_bucket["nested"])
    assert (ring.uri, ring.ordering, nested.ordering) == (wmap.lambda_s3_uri(wmap.WMAP_K_IQU_URL), "RING", "NESTED")
    assert ring.stand_in and not nested.stand_in
    a, b = wmap.wmap_photometry(ring, *B0453), wmap.wmap_photometry(nested, *B0453)
    assert a["flux_jy"] == b["flux_jy"] and a["flux_err_jy"] == b["flux_err_jy"]
    assert (a["n_aperture"], a["n_annulus"], a["band"], a["upper_limit"]) == (9, 26, "W", True)
    assert a["flux_jy"] == pytest.approx(130.415, abs=0.01) and a["flux_err_jy"] == pytest.approx(77.03, abs=0.01)
    assert a["note"].startswith("STAND-IN") and a["flux_ul_jy"] == pytest.approx(a["flux_jy"] + 2 * a["flux_err_jy"])
    # an aperture much smaller than a pixel still takes the pixel holding the target: same in both orderings
    small = [wmap.wmap_photometry(x, *B0453, radius_deg=0.2) for x in (ring, nested)]
    assert small[0]["n_aperture"] == 1 and small[0]["flux_jy"] == small[1]["flux_jy"]


def test_stokes_and_polarisation_columns_are_both_read(tmp_path):
    (tmp_path / "stokes.fits").write_bytes(_wmap_style_copy(nested=False, polarisation_names=False))
    (tmp_path / "pol.fits").write_bytes(_wmap_style_copy(nested=False, polarisation_names=True))
    s, p = wmap.read_wmap_map(tmp_path / "stokes.fits"), wmap.read_wmap_map(tmp_path / "pol.fits")
    assert s.columns == {"I": "I_STOKES", "Q": "Q_STOKES", "U": "U_STOKES"}
    assert p.columns == {"I": "TEMPERATURE", "Q": "Q_POLARISATION", "U": "U_POLARISATION"}
    assert all(np.array_equal(s.maps[k], p.maps[k]) for k in "IQU")
    assert (p.coord, p.band, p.unit) == ("G", "W", "mK")      # WMAP file: Galactic; FREQ; TUNIT1


def test_aperture_value_against_an_independent_calculation():
    m = wmap.read_wmap_map(W_FILE, coord="G", unit="mK", band="W")
    r = wmap.wmap_photometry(m, *B0453, radius_deg=2.5, annulus_deg=(5.0, 9.0))
    v0 = hp.ang2vec(r["lon"], r["lat"], lonlat=True)
    # pixels overlapping a disc: every NSIDE 32 pixel that holds an NSIDE 8192 pixel centre (0.007 deg grid) inside it
    # (a 2048 grid misses one 5-deg overlap sliver that healpy's inclusive test finds)
    overlapping = lambda rad: np.unique(hp.ang2pix(32, *hp.pix2ang(8192, hp.query_disc(8192, v0, np.radians(rad)))))
    ap = overlapping(2.5)
    centres = np.array(hp.pix2vec(32, np.arange(12288))).T
    dist = np.degrees(np.arccos(np.clip(centres @ v0, -1, 1)))
    an = np.setdiff1d(np.flatnonzero((dist > 5.0) & (dist <= 9.0)), overlapping(5.0))
    assert (len(ap), len(an)) == (r["n_aperture"], r["n_annulus"])
    with fits.open(W_FILE) as h:
        i_map = np.asarray(h[1].data["I_STOKES"], float).ravel()
    h_, k, c, nu = 6.62607015e-34, 1.380649e-23, 299792458.0, 93.5e9
    x = h_ * nu / (k * 2.725)
    t_rj = (i_map[ap] - np.median(i_map[an])).sum() * 1e-3 * x ** 2 * np.exp(x) / np.expm1(x) ** 2
    expected = t_rj * 2 * k * nu ** 2 / c ** 2 * (4 * np.pi / 12288) * 1e26
    assert r["flux_jy"] == pytest.approx(expected, rel=1e-9)
    assert r["flux_err_jy"] == pytest.approx(np.std(i_map[an], ddof=1) * len(ap) * r["flux_jy"] / (i_map[ap] - np.median(i_map[an])).sum(), rel=1e-9)


def test_missing_header_information_is_asked_for(tmp_path):
    with pytest.raises(BadInputFileError, match="coord="):
        wmap.read_wmap_map(W_FILE)                            # healpy's copy: no COORDSYS, not marked WMAP
    with pytest.raises(BadInputFileError, match="unit="):
        wmap.read_wmap_map(W_FILE, coord="G")                 # no TUNIT
    (tmp_path / "map.fits").write_bytes(W_FILE.read_bytes())
    with pytest.raises(BadInputFileError, match="band="):
        wmap.read_wmap_map(tmp_path / "map.fits", coord="G", unit="mK")
    with pytest.raises(BadInputFileError, match="not a temperature"):
        wmap.read_wmap_map(W_FILE, coord="G", unit="Jy/beam", band="W")
    (tmp_path / "nested.fits").write_bytes(_wmap_style_copy(nested=True, polarisation_names=True))
    with pytest.raises(BadParameterError, match="FREQ"):
        wmap.read_wmap_map(tmp_path / "nested.fits", band="K")


def test_figures_are_written_and_labelled(lambda_bucket, tmp_path):
    import matplotlib.pyplot as plt
    m = wmap.read_wmap_map(lambda_bucket["ring"])
    out = wmap.wmap_figures(m, *B0453, tmp_path, name="B0453-685")
    assert sorted(p.name for p in out["files"].values()) == ["wmap_W_I_cutout.png", "wmap_W_I_mollview.png", "wmap_W_Q_mollview.png"]
    assert all(p.stat().st_size > 10_000 for p in out["files"].values())
    assert all("MWNBDEMO stand-in" in f.axes[0].get_title() for f in out["figures"].values())
    plt.close("all")
