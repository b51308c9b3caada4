"""Issue 4: CSC x 4FGL cross-match on real data; local == server-side; counterparts in a handful of requests;
CLI; benchmark."""
import numpy as np
import pytest
import astropy.units as u
from astropy.table import Table
from astropy.coordinates import SkyCoord

from mwnb.catalogs import read_csc, read_fermi
from mwnb.crossmatch import (match_local, match_astropy, match_tap, same_pairs, pair_keys, group_by_fermi,
                             find_counterparts, crossmatch_adql, xmatch_cli, benchmark, chance_matches,
                             angular_separation)
from mwnb.config import data_dir

DATA = data_dir()
FGL = DATA / "pypi-fermipy-4fgl-dr4/gll_psc_v35.fit"
CSC = DATA / "ivoa-dm-usecases-csc2/ivoa_csc2_example.xml"


@pytest.fixture(scope="module")
def fgl(): return read_fermi(FGL)


@pytest.fixture(scope="module")
def csc(): return read_csc(CSC)


def test_hand_checked_pairs(csc, fgl):
    p = match_local(csc, fgl, "circle95")
    got = set(zip(p["fermi_name"], p["source_name"]))
    # PSR J0357+3205 and its X-ray counterpart; a CSC source in the 95% ellipse of the blazar 4FGL J0833.0+3300
    assert ("4FGL J0357.8+3204", "2CXO J035752.3+320520") in got
    assert ("4FGL J0833.0+3300", "2CXO J083254.5+330146") in got
    # by hand from the raw FITS row: separation < 95% semi-major axis
    raw = Table.read(FGL, hdu=1)
    row = raw[np.char.strip(raw["Source_Name"].astype(str)) == "4FGL J0357.8+3204"][0]
    src = csc[csc["name"] == "2CXO J035752.3+320520"][0]
    sep = SkyCoord(float(row["RAJ2000"]), float(row["DEJ2000"]), unit="deg").separation(SkyCoord(src["ra"], src["dec"], unit="deg")).deg
    assert sep < row["Conf_95_SemiMajor"]
    assert abs(p["sep"][p["source_name"] == "2CXO J035752.3+320520"][0] - sep) < 1e-9


def test_ellipse_subset_of_circle_and_astropy_separations(csc, fgl):
    circ, ell = match_local(csc, fgl, "circle95"), match_local(csc, fgl, "ellipse95")
    assert pair_keys(ell) < pair_keys(circ)
    assert (len(circ), len(ell)) == (34, 28)
    for p in (circ, ell, match_local(csc, fgl, "radius:0.1deg")):
        ref = SkyCoord(p["fermi_ra"], p["fermi_dec"]).separation(SkyCoord(p["source_ra"], p["source_dec"])).deg
        assert np.max(np.abs(ref - np.asarray(p["sep"]))) < 1e-9
        assert same_pairs(p, match_astropy(csc, fgl, p.meta["region"]))


def test_brute_force_all_pairs(csc, fgl):
    sep = SkyCoord(csc["ra"], csc["dec"])[:, None].separation(SkyCoord(fgl["ra"], fgl["dec"])[None, :]).deg
    si, fi = np.nonzero(sep <= 0.1)
    assert pair_keys(match_local(csc, fgl, "radius:0.1deg")) == set(zip(fi.tolist(), si.tolist()))


def _near_csc(csc, fgl):
    "Fermi sources within 1 deg of a CSC source (a small input for the sqlite ADQL engine)."
    return fgl[np.unique(np.asarray(match_local(csc, fgl, "radius:1deg")["fermi_index"]))]


@pytest.mark.parametrize("region", ["circle95", "ellipse95", "radius:0.1deg"])
def test_local_equals_server_side_upload(archive, csc, fgl, region):
    from mwnb.catalogs import csc_sources
    tap_csc = csc_sources()          # the server's csc table, as the server has it
    sub = _near_csc(tap_csc, fgl)
    srv = match_tap(tap_csc, sub, region)
    loc = match_local(tap_csc, sub, region)
    assert len(loc) > 0 and same_pairs(srv, loc)
    assert np.max(np.abs(np.asarray(srv["sep"]) - np.asarray(loc["sep"]))) < 1e-12


def test_local_equals_server_side_table(archive, fgl):
    from mwnb.catalogs import csc_sources
    from mwnb.demo.crossmatch import fermilpsc_table
    tap_csc = csc_sources()
    full = fermilpsc_table(DATA)
    names = set(_near_csc(tap_csc, fgl)["name"])
    archive.add_table("fermilpsc_near", full[[n in names for n in full["name"]]])
    sub = fgl[[n in names for n in fgl["name"]]]
    srv = match_tap(tap_csc, sub, "circle95", fermi_table="fermilpsc_near")
    assert "CIRCLE('ICRS', f.ra, f.dec, f.semi_major_axis)" in srv.meta["query"]
    assert same_pairs(srv, match_local(tap_csc, sub, "circle95")) and len(srv) == 34


def test_grouping_and_reliability(csc, fgl):
    p = match_local(csc, fgl, "circle95")
    g = group_by_fermi(p, fgl, matched_only=True)
    assert len(g) == len(set(p["fermi_index"])) and g["n_matches"].sum() == len(p)
    nc = chance_matches(csc, fgl, "circle95")
    assert nc.shape == (len(fgl),) and (nc >= 0).all() and nc.sum() < len(p)


def test_counterparts_few_requests(archive, csc, fgl):
    gaia_star = SkyCoord(280.0002534562339, -60.00259557514462, unit="deg")
    twomass_star = SkyCoord(10.684737, 41.269035, unit="deg")
    base = fgl[:398]
    extra = fgl[:2].copy()
    extra["name"] = ["test near Gaia star", "test near 2MASS star"]
    extra["ra"] = [gaia_star.ra.deg + 0.01, twomass_star.ra.deg] * u.deg
    extra["dec"] = [gaia_star.dec.deg, twomass_star.dec.deg - 0.02] * u.deg
    from astropy.table import vstack
    f400 = vstack([base, extra])
    assert len(f400) == 400
    pairs = match_local(csc, f400, "circle95")
    archive.clear()
    g = find_counterparts(f400, pairs, "gaia", radius=0.03, n_nearest=3)
    n_gaia = len(archive.requests_to("/gaia/tap"))
    t = find_counterparts(f400, pairs, "2mass", radius=0.03, n_nearest=3)
    n_irsa = len(archive.requests_to("/irsa/tap"))
    assert n_gaia <= 2 and n_irsa <= 2, (n_gaia, n_irsa)
    assert 6636090334814214528 in set(g["source_id"])
    row = g[g["source_id"] == 6636090334814214528][0]
    assert row["fermi_name"] == "test near Gaia star"
    expected = angular_separation(f400["ra"][398], f400["dec"][398], row["ra"], row["dec"])
    assert abs(row["sep_fermi"] - expected) < 1e-12
    assert list(t["designation"]) == ["00424433+4116085"] and abs(t["sep_fermi"][0] - 0.02) < 1e-4
    assert {"classprob_dsc_combmod_quasar", "phot_g_mean_flux", "phot_g_mean_mag", "phot_variable_flag",
            "sep_csc"} <= set(g.colnames)


def test_xmatch_cli_function(tmp_path, capsys):
    r = xmatch_cli(str(CSC), str(FGL), region="ellipse95", out=str(tmp_path))
    out = capsys.readouterr().out
    assert "pairs: 28" in out and f"at least one match: {r['n_fermi_matched']}" in out
    assert (tmp_path / "pairs.ecsv").exists() and (tmp_path / "grouped.ecsv").exists()
    g = Table.read(tmp_path / "grouped.ecsv")
    assert g["n_matches"].sum() == 28 and "n_chance" in g.colnames
    r = xmatch_cli(str(CSC), str(FGL), region="radius:0.1deg", b_max=10.0, out=str(tmp_path / "b10"))
    assert r["n_pairs"] == int(((np.abs(r["pairs"]["source_b"]) <= 10) & (np.abs(r["pairs"]["fermi_b"]) <= 10)).sum())


def test_adql_text():
    q = crossmatch_adql("circle95")
    assert q.startswith("SELECT f.name AS fermi_name, c.name AS source_name")
    assert "1=CONTAINS(POINT('ICRS', c.ra, c.dec), CIRCLE('ICRS', f.ra, f.dec, f.semi_major_axis))" in q


def test_benchmark_400k():
    r = benchmark(FGL, n_sources=400_000, region="ellipse95")
    print(r)
    assert r["same_pairs"] and r["n_pairs"] > 1000 and r["max_sep_diff_deg"] < 1e-9
    assert r["t_local"] <= 1.0 and r["ratio"] >= 2.0


def test_mwnb_xmatch_command_line(tmp_path, capsys):
    from mwnb.cli import main
    rc = main(["xmatch", "--xray", str(CSC), "--fermi", str(FGL), "--region", "radius:0.1deg", "--b-max", "10",
               "--min-flux", "0", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    p = Table.read(tmp_path / "pairs.ecsv")
    assert f"pairs: {len(p)}" in out and len(p) > 0 and (np.abs(p["source_b"]) <= 10).all()
    assert (tmp_path / "grouped.ecsv").exists()


@pytest.mark.slow
def test_tutorial_runs_on_local_archive(tmp_path):
    from mwnb.runner import run_target
    res = run_target("Galactic plane", ["csc_fermi_crossmatch"], out=str(tmp_path), archive="local", html=False)
    prod = res[0]["notebook"].parent / "csc_fermi_crossmatch"
    for name in ("pairs.ecsv", "grouped.ecsv", "grouped.xml", "grouped.csv", "gaia_counterparts.ecsv",
                 "twomass_counterparts.ecsv", "chandra_observations_aitoff.png", "csc_aitoff.png",
                 "csc_lon_lat_hist.png", "csc_plane_strip.png", "matches_per_fermi_lon_lat.png",
                 "flux_ratio_vs_l_b.png", "flux_ratio_by_class.png", "counterparts_by_class.png",
                 "gaia_variability_by_class.png"):
        assert (prod / name).stat().st_size > 0, name
    g = Table.read(prod / "grouped.ecsv")
    assert g["n_matches"].sum() == len(Table.read(prod / "pairs.ecsv")) and "n_chance" in g.colnames
