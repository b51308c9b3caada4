"""NWAY counterpart probabilities (calibrated on simulated fields with known counterparts) and Gaia epoch propagation."""
import numpy as np
import pytest
import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from mwnb.associations import (propagate_gaia, run_nway, simulate_field, association_scores, associate, xray_errors,
                               epoch_prop_adql)
from mwnb.errors import BadParameterError, MissingInputError

# These tests run in a pytest process of their own (README test command): a whole-suite run crashed later in
# unrelated tests (segfault while garbage-collecting) only after they had run in the same process; cause not found yet.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nway_precision_on_simulated_field(seed):
    """Among pairs with p_i > 0.9 at least 90% are the true counterparts, on every seed (not a lucky one)."""
    xray, stars, truth, area = simulate_field(seed, n_xray=150, counterpart_fraction=0.8, density=2e4)
    res = run_nway((xray, xray["sigma"]), {"opt": (stars, 0.01)}, area, prior_completeness=0.8)
    pi, pm = association_scores(res, truth, "opt", "p_i"), association_scores(res, truth, "opt", "p_match")
    print(f"seed {seed}: p_i>0.9 {pi}; p_any*p_i>0.9 {pm}")
    assert pi["n_selected"] > 80
    assert pi["precision"] >= 0.9
    assert pm["precision"] >= 0.95 and pm["completeness"] >= 0.7
    # every X-ray source is there once with its no-counterpart row
    assert (res["opt_index"] == -1).sum() == len(xray) and set(res["xray_index"]) == set(range(len(xray)))


@pytest.mark.slow
def test_p_i_alone_is_not_enough_in_a_crowded_field():
    """At Galactic-plane star densities p_i (conditional on a counterpart) loses precision; p_any*p_i keeps it."""
    xray, stars, truth, area = simulate_field(5, density=6e4)
    res = run_nway((xray, xray["sigma"]), {"opt": (stars, 0.01)}, area, prior_completeness=0.8)
    pi, pm = association_scores(res, truth, "opt", "p_i"), association_scores(res, truth, "opt", "p_match")
    print(f"6e4/deg2: p_i>0.9 {pi}; p_any*p_i>0.9 {pm}")
    assert pm["precision"] >= 0.95
    assert pm["precision"] > pi["precision"]


@pytest.mark.slow
def test_magnitude_prior_keeps_precision_and_gains_completeness():
    from scipy.stats import norm
    xray, stars, truth, area = simulate_field(1)
    base = run_nway((xray, xray["sigma"]), {"opt": (stars, 0.01)}, area, prior_completeness=0.8)
    lo = np.arange(10.0, 26.0); hi = lo + 1
    hist = (lo, hi, norm.cdf(hi, 17, 1.5) - norm.cdf(lo, 17, 1.5), norm.cdf(hi, 19.5, 1.5) - norm.cdf(lo, 19.5, 1.5))
    mag = run_nway((xray, xray["sigma"]), {"opt": (stars, 0.01)}, area, prior_completeness=0.8,
                   mag_priors={"opt:mag": hist})
    b, m = association_scores(base, truth, "opt", "p_match"), association_scores(mag, truth, "opt", "p_match")
    print(f"no prior {b}; magnitude prior {m}")
    assert m["precision"] >= 0.95 and m["completeness"] > b["completeness"]


def test_propagation_by_hand_and_barnards_star():
    hand = Table({"ra": [10.0, 10.0], "dec": [0.0, 0.0], "pmra": [0.0, np.nan], "pmdec": [1000.0, np.nan],
                  "parallax": [np.nan, 3.0], "ref_epoch": [2016.0, 2016.0]})
    p = propagate_gaia(hand, 2000.0)
    assert abs(p["dec"][0] * 3600 - (-16.0)) < 1e-6 and abs(p["ra"][0] - 10.0) < 1e-12
    assert list(p["pm_missing"]) == [False, True] and (p["ra"][1], p["dec"][1]) == (10.0, 0.0)
    # Gaia DR3 4472832130942575872 -> 2000.0 without RV: the published (VizieR I/355) J2000 position
    b = Table({"ra": [269.44850252543836], "dec": [4.739420051112412], "parallax": [546.975939730948],
               "pmra": [-801.5509783684709], "pmdec": [10362.394206546573], "ref_epoch": [2016.0]})
    q = propagate_gaia(b, 2000.0)
    sep = SkyCoord(q["ra"][0], q["dec"][0], unit="deg").separation(SkyCoord("17h57m48.49847s", "+04d41m36.1139s"))
    assert sep < 1 * u.mas
    assert "EPOCH_PROP_POS(ra, dec, parallax, pmra, pmdec, radial_velocity, ref_epoch, 2001.25)" in epoch_prop_adql(2001.25)


def test_csc_error_conversion_and_bad_input():
    t = Table({"err_ellipse_r0": [2.4477468], "err_ellipse_r1": [2.4477468], "err_ellipse_ang": [0.0]})
    maj, mn, _ = xray_errors(t)
    assert abs(maj[0] - 1.0) < 1e-6 and abs(mn[0] - 1.0) < 1e-6
    with pytest.raises(MissingInputError, match="err_ellipse_r0"):
        xray_errors(Table({"r0": [1.0]}))
    with pytest.raises(BadParameterError, match="between 0 and 1"):
        xray_errors(t, level=1.0)
    xray, stars, truth, area = simulate_field(0, n_xray=5, density=1e3)
    with pytest.raises(BadParameterError, match="positive position error"):
        run_nway((xray, -1.0), {"opt": (stars, 0.01)}, area)


def test_associate_moves_gaia_to_the_xray_epoch():
    xray = Table({"name": ["X1"], "ra": [150.0], "dec": [2.0], "err_ellipse_r0": [1.5], "err_ellipse_r1": [1.2],
                  "err_ellipse_ang": [0.0]})
    gaia = Table({"source_id": [7], "ra": [150.0], "dec": [2.0 - 6.5 / 3600], "pmra": [0.0], "pmdec": [-500.0],
                  "parallax": [10.0], "ra_error": [0.1], "dec_error": [0.1], "ra_dec_corr": [0.0], "ref_epoch": [2016.0]})
    moved = associate(xray, {"gaia": gaia}, area=0.01 * u.deg**2, epoch=2003.0, radius=10 * u.arcsec)
    still = associate(xray, {"gaia": gaia}, area=0.01 * u.deg**2, radius=10 * u.arcsec)
    m, s = moved[moved["gaia_index"] == 0][0], still[still["gaia_index"] == 0][0]
    assert m["gaia_source_id"] == 7 and abs(m["sep_gaia"]) < 1e-3 and abs(s["sep_gaia"] - 6.5) < 1e-3
    assert m["p_match"] > 0.9 > s["p_match"]


def test_counterpart_probabilities_on_the_demo_stand_ins(archive):
    """The cross-match's probability step against the local archive: the demo's stand-in Gaia and 2MASS stars sit
    0.4" and 0.8" from chosen CSC sources, alone within 5", so NWAY finds them with high p_any; a CSC source with
    no star nearby gets none; the assumed X-ray error is stated and the stand-in label carried."""
    from mwnb.catalogs import csc_sources
    from mwnb.associations import counterpart_probabilities
    csc = csc_sources()
    names = ["2CXO J202130.7+402646", "2CXO J174625.7-285152", "2CXO J174016.2-280730"]
    xray = csc[[n in names for n in csc["name"]]]["name", "ra", "dec"]
    res = counterpart_probabilities(xray, radius=5.0, xray_error_95=1.0)
    assert "ASSUMED: 1.0 arcsec" in res.meta["xray_errors"] and "MWNBDEMO" in res.meta["MWNBDEMO"]
    assert res.meta["n_gaia_stars"] == 2 and res.meta["n_2mass_stars"] == 2
    best = {}
    for r in res:
        if r["match_flag"] == 1: best[str(r["xray_name"])] = r
    for n in names[:2]:
        assert best[n]["gaia_index"] >= 0 and best[n]["p_any"] > 0.9 and abs(best[n]["sep_gaia"] - 0.4) < 0.05
    assert names[2] not in best or best[names[2]]["p_any"] < 0.1
    with pytest.raises(Exception, match="xray_error_95"):
        counterpart_probabilities(xray)
