"""Joint X-ray spectral fitting on real Swift-XRT responses (mwnb.spectra, Sherpa + XSPEC model library)."""
import re, time
from pathlib import Path
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from mwnb.errors import EngineUnavailableError, MissingInputError
from mwnb import spectra
from mwnb.spectra import fit_spectra, load_spectrum, pick_engine
from mwnb.demo.swift import simulate_tpyx_spectra, selected_obsids, TPYX_PUBLISHED, TPYX_SEED
from mwnb.config import data_dir

XRT = data_dir() / "sherpa-swift-xrt"
PHA, ARF, RMF = XRT / "target_sr.pha", XRT / "target_sr.arf", XRT / "swxpc0to12s6_20130101v014.rmf.gz"
v = lambda t, c, i=0: float(np.asarray(t[c])[i])


def test_real_xrt_spectrum_fits_tbabs_powerlaw():
    "ObsID 00092220001 with its real ARF and RMF: tbabs*powerlaw under cstat gives finite values and 90% bounds."
    t = fit_spectra([load_spectrum(PHA, ARF, RMF)], "tbabs*powerlaw", engine="sherpa", start={"PhoIndex": 2.0})
    assert t["engine"][0] == "sherpa" and t["dof"][0] == 667
    for c in ("tbabs.nH", "powerlaw.PhoIndex", "powerlaw.norm"):
        lo, val, hi = v(t, c + "_lo"), v(t, c), v(t, c + "_hi")
        assert np.isfinite([lo, val, hi]).all() and lo < val < hi, c
    # independent references instead of values measured from this code: the statistic is the Cash statistic of
    # the data under the fitted model computed by hand (cstat_bins, the XSPEC manual's formula), and the 90% bounds
    # are where the profiled statistic has risen by 2.706 (refitted with Sherpa's own Nelder-Mead, another optimiser)
    jf = t.joint_fit
    a = spectra.spectrum_arrays(jf.data[0], jf.models[0])
    assert spectra.cstat_bins(a["S"], a["mu"]).sum() == pytest.approx(v(t, "stat"), rel=1e-9)
    from sherpa.optmethods import NelderMead
    fit = spectra._fit_of(jf, [0]); fit.method = NelderMead()
    for c in ("powerlaw.PhoIndex", "tbabs.nH"):
        par = spectra._parameter(jf, c)
        for side in ("_lo", "_hi"):
            if t[c + "_status"][0] != "ok": continue
            assert spectra.profile_delta(fit, par, v(t, c + side)) == pytest.approx(spectra.DELTA_STAT_90, abs=0.05), c + side
    # Sherpa's own powlaw1d gives the same fit: test_sherpa_powlaw1d_and_xspec_powerlaw_agree_on_a_real_spectrum
    assert 1e-14 < v(t, "flux") < 1e-12
    assert all(t[c + "_status"][0] == "ok" for c in ("tbabs.nH", "powerlaw.PhoIndex", "powerlaw.norm"))


@pytest.fixture(scope="module")
def tpyx_spectra(tmp_path_factory):
    return simulate_tpyx_spectra(tmp_path_factory.mktemp("tpyx"), obsids=selected_obsids(), seed=TPYX_SEED)


# The former T Pyx "recovery" test (one seed, every interval required to hold the truth, values pinned to what the
# code produced) is replaced by the coverage study: tests/test_spectral_coverage.py, mwnb.demo.spectral_coverage.
# T Pyx's own chain (simulated spectra, backgrounds) is tested with the Swift chain (tests/test_swift.py).


def test_result_schema_is_the_same_for_sherpa_and_xspec(tpyx_spectra):
    "Lower-case component.parameter columns with units, engine in meta, whatever the engine spells."
    import astropy.units as u
    t = fit_spectra(tpyx_spectra[:1], "tbabs*(bbody+bremss)", engine="sherpa", start={"bbody.kT": 0.1, "bremss.kT": 3.0},
                    errors="covar", n_draws=50, gof=0)
    assert t.meta["engine"] == "sherpa"
    numeric = [c for c in t.colnames if t[c].dtype.kind in "fi"]
    assert numeric and all(t[c].unit is not None for c in numeric), [c for c in numeric if t[c].unit is None]
    # what PyXspec hands over for the same model: XSPEC's spellings (TBabs<1>(bbody<2> + bremss<3>) in the
    # HEASARC Swift tutorial's AllModels.show output), its unit strings ('10^22', 'keV', '')
    comps = [("TBabs", [("nH", "10^22", 0.14, 0.13, 0.15, "ok")]),
             ("bbody", [("kT", "keV", 0.047, 0.045, 0.049, "ok"), ("norm", "", 0.01, 0.009, 0.011, "ok")]),
             ("bremss", [("kT", "keV", 1.4, 1.2, 1.6, "ok"), ("norm", "", 0.0027, 0.0025, 0.0029, "ok")])]
    F = u.erg / u.cm**2 / u.s
    row = {"spectrum": "a.pha", "obsid": "00031968059", "exposure": (1132.557, u.s), "counts": (612.0, u.count),
           "background": "", "background_counts": (np.nan, u.count), **spectra.xspec_parameter_columns(comps),
           "fit_flags": ""}
    for k in ("flux", "bbody_flux", "bremss_flux", "unabsorbed_flux", "bbody_unabsorbed_flux", "bremss_unabsorbed_flux"):
        row.update({k: (1e-11, F), f"{k}_lo": (0.9e-11, F), f"{k}_hi": (1.1e-11, F)})   # as pyxspec_fit writes them
    row["fit_flags"] = ""
    row.update({"stat": (100.0, u.dimensionless_unscaled), "dof": (90, u.dimensionless_unscaled),
                "spectrum_stat": (np.nan, u.dimensionless_unscaled), "gof_p": (np.nan, u.dimensionless_unscaled),
                "engine": "xspec"})
    xs = spectra.fit_results_table([row], {"engine": "xspec"})
    assert xs.colnames == t.colnames
    assert all(xs[c].unit == t[c].unit for c in t.colnames), [c for c in t.colnames if xs[c].unit != t[c].unit]
    assert "tbabs.nH" in xs.colnames and "TBabs.nH" not in xs.colnames
    assert xs["dof"].dtype.kind == "i" and t["dof"].dtype.kind == "i"


def test_xspec_component_names_map_to_the_schema():
    "XSPEC model names (XSPEC manual model list: powerlaw, bbodyrad, cflux; tutorial: TBabs, bbody, bremss)."
    assert spectra.xspec_component_labels(["TBabs", "bbody", "bremss"]) == ["tbabs", "bbody", "bremss"]
    assert spectra.xspec_component_labels(["TBabs", "cflux", "powerlaw", "bbodyrad", "powerlaw_5"]) == \
        ["tbabs", "cflux", "powerlaw", "bbodyrad", "powerlaw_2"]
    # the Sherpa engine numbers a repeated model the same way
    _, comps = spectra.build_model("tbabs*(powerlaw+powerlaw)")
    assert [c.name for c in comps] == ["tbabs", "powerlaw", "powerlaw_2"]


def test_parameter_evolution_title(tpyx_spectra, tmp_path):
    t = Table({"day": [142.75, 144.6], "bbody.kT": [0.047, 0.046], "bbody.kT_lo": [0.045, 0.044],
               "bbody.kT_hi": [0.049, 0.048], "flux": [1e-11, 1.1e-11]})
    fig = spectra.plot_parameter_evolution(t, "day", tmp_path / "e.png", title="T Pyx - stand-in (simulated) spectra")
    assert fig._suptitle.get_text() == "T Pyx - stand-in (simulated) spectra" and (tmp_path / "e.png").stat().st_size > 10_000


def test_fit_spectra_cli_writes_table_and_plot(tpyx_spectra, tmp_path, capsys):
    "`mwnb fit-spectra` through the lead's dispatcher: ECSV + PNG written, values printed, engine named."
    from mwnb.cli import main
    out = tmp_path / "fit"
    rc = main(["fit-spectra", *map(str, tpyx_spectra[:2]), "--model", "tbabs*(bbody+bremss)", "--tie", "nH",
               "--band", "0.3-7", "--engine", "sherpa", "--start", "bbody.kT=0.1", "bremss.kT=3", "--errors", "covar",
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "engine: sherpa" in text and "tbabs.nH=" in text
    t = Table.read(out / "spectral_fit.ecsv")
    assert len(t) == 2 and t.meta["engine"] == "sherpa" and str(t["bbody.kT"].unit) == "keV"
    assert (out / "spectral_fit_spectra.png").stat().st_size > 20_000


# `mwnb fit-benchmark` (mwnb.demo.swift.fit_benchmark) belongs to the Swift chain and is tested there.


def test_engine_and_input_errors(tmp_path):
    import importlib.util
    if importlib.util.find_spec("xspec") is None:
        with pytest.raises(EngineUnavailableError, match="PyXspec"): pick_engine("xspec")
        assert pick_engine("auto") == "sherpa"
    with pytest.raises(MissingInputError): load_spectrum(tmp_path / "nothing.pha")
    with pytest.raises(MissingInputError, match="no RMF"): load_spectrum(PHA)


def test_profile_confidence_intervals_agree_with_curvature_and_are_the_default():
    "errors='conf' (Sherpa's profile) on the real spectrum: asymmetric bounds around the same best fit as 'covar'."
    kw = dict(model="tbabs*powerlaw", engine="sherpa", start={"PhoIndex": 2.0})
    cv = fit_spectra([load_spectrum(PHA, ARF, RMF)], errors="covar", gof=0, n_draws=50, **kw)
    pf = fit_spectra([load_spectrum(PHA, ARF, RMF)], **kw)
    assert pf.meta["error_method"].startswith("profile (Sherpa conf), delta-stat 2.706")
    c = "powerlaw.PhoIndex"
    assert v(pf, c) == pytest.approx(v(cv, c), rel=1e-6)
    lo, hi = v(pf, c) - v(pf, c + "_lo"), v(pf, c + "_hi") - v(pf, c)
    assert lo == pytest.approx(0.8706, abs=0.01) and hi == pytest.approx(1.1076, abs=0.01)   # measured
    assert lo / (v(cv, c) - v(cv, c + "_lo")) == pytest.approx(1.0, abs=0.3)                  # same scale as covar


# ---- profile intervals with limits, backgrounds, fluxes, cross-checks, goodness of fit ----

@pytest.fixture(scope="module")
def real_with_background(tmp_path_factory):
    "The REAL Swift-XRT spectrum (BACKFILE none) with a SIMULATED background, as files with keywords; real backgrounds: below."
    from mwnb.demo.spectral_coverage import real_spectrum_with_simulated_background
    return real_spectrum_with_simulated_background(tmp_path_factory.mktemp("xrt_bkg"))


def test_acceptance_fit_spectra_cli_real_spectrum_with_background(real_with_background, tmp_path, capsys):
    "`mwnb fit-spectra SPEC --model tbabs*powerlaw --band 0.5-7` with BACKFILE: the schema, unabsorbed flux with interval, nH >= 0 with status."
    from mwnb.cli import main
    out = tmp_path / "fit"
    rc = main(["fit-spectra", str(real_with_background["spectrum"]), "--model", "tbabs*powerlaw", "--band", "0.5-7",
               "--engine", "sherpa", "--start", "PhoIndex=2", "--distance", "1.0", "--flux_band", "0.5-2", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "stat (wstat)" in text and "unabsorbed flux 0.5-2 keV" in text
    t = Table.read(out / "spectral_fit.ecsv")
    # schema: value, interval, status and unit for every parameter; engine, provenance, band, grouping in meta
    for c in ("tbabs.nH", "powerlaw.PhoIndex", "powerlaw.norm"):
        assert {c, c + "_lo", c + "_hi", c + "_status"} <= set(t.colnames)
        assert t[c].unit is not None and t[c + "_status"][0] in ("ok", "pegged_low", "pegged_high")
    assert t.meta["engine"] == "sherpa" and t.meta["stat_used"] == "wstat" and t.meta["flux_band_keV"] == [0.5, 2.0]
    assert t.meta["error_method"].startswith("profile")
    prov = t.meta["provenance"][0]
    assert prov["background_simulated"] is True and prov["spectrum_simulated"] is False
    assert prov["grouping"].startswith(">= 1 source and >= 1 background")
    assert t["background"][0] == "target_bkg_SIMULATED.pha" and v(t, "background_counts") > 0
    # nH: lower bound never negative, with its status (measured: 0 and pegged_low on this 53-count spectrum)
    assert v(t, "tbabs.nH_lo") >= 0
    assert v(t, "tbabs.nH_lo") == 0.0 and t["tbabs.nH_status"][0] == "pegged_low"
    # unabsorbed flux with a 90% interval, above the absorbed one; luminosity at 1 kpc
    lo, val, hi = v(t, "unabsorbed_flux_lo"), v(t, "unabsorbed_flux"), v(t, "unabsorbed_flux_hi")
    assert 0 < lo < val < hi and val >= v(t, "flux") and str(t["unabsorbed_flux"].unit) == "erg / (s cm2)"
    assert v(t, "luminosity") == pytest.approx(4 * np.pi * spectra.KPC_CM**2 * val, rel=1e-9)
    assert 0 <= v(t, "gof_p") <= 1
    assert (out / "spectral_fit_spectra.png").stat().st_size > 20_000


def test_nh_consistent_with_zero_is_pegged_not_negative(tmp_path):
    "A power law with nH = 0.005e22 (simulated through the real responses): lower bound 0, status pegged_low."
    import shutil
    for f in (ARF, RMF): shutil.copy(f, tmp_path / f.name)
    p = spectra.simulate_spectrum(tmp_path / "nh0.pha", "tbabs*powerlaw", {"nH": 0.005, "PhoIndex": 2.0, "norm": 1e-3},
                                  10000, tmp_path / RMF.name, tmp_path / ARF.name, seed=3)
    for errors in ("conf", "covar"):
        t = fit_spectra([p], "tbabs*powerlaw", band=(0.5, 7), engine="sherpa", errors=errors, gof=0, n_draws=100,
                        start={"PhoIndex": 1.5})
        assert v(t, "tbabs.nH_lo") == 0.0 and t["tbabs.nH_status"][0] == "pegged_low", errors
        assert v(t, "tbabs.nH_hi") > v(t, "tbabs.nH") >= 0
        assert t["powerlaw.PhoIndex_status"][0] == "ok"


@pytest.mark.parametrize("which,stat", [("swift", "cstat"), ("chandra_3c273", "wstat")])
def test_sherpa_powlaw1d_and_xspec_powerlaw_agree_on_a_real_spectrum(which, stat, request):
    "Sherpa's powlaw1d and the XSPEC library's powerlaw, each times tbabs, within 1%: on Swift ObsID 00092220001 (no "
    "background, cstat) and on 3C 273 with its real background (W-stat)."
    spectrum = (lambda: load_spectrum(PHA, ARF, RMF)) if which == "swift" else \
               (lambda: request.getfixturevalue("sherpa_chandra") / "3c273.pi")
    kw = dict(engine="sherpa", band=(0.5, 7), gof=0, n_draws=100)
    xs = fit_spectra([spectrum()], "tbabs*powerlaw", start={"PhoIndex": 2.0}, **kw)
    sh = fit_spectra([spectrum()], "tbabs*sherpa.powlaw1d", start={"gamma": 2.0}, **kw)
    assert xs.meta["stat_used"] == sh.meta["stat_used"] == stat
    for a, b in (("powerlaw.PhoIndex", "sherpa_powlaw1d.gamma"), ("powerlaw.norm", "sherpa_powlaw1d.ampl"),
                 ("tbabs.nH", "tbabs.nH")):
        for suffix in ("", "_lo", "_hi"):
            x, y = v(xs, a + suffix), v(sh, b + suffix)
            assert y == pytest.approx(x, rel=0.01, abs=1e-9), (a + suffix, x, y)
    assert v(sh, "stat") == pytest.approx(v(xs, "stat"), abs=0.01)


def test_sherpa_bbody_and_xspec_bbodyrad_agree_on_the_real_spectrum():
    "Sherpa's bbody and XSPEC's bbodyrad (ampl = 1.0344e-3 norm): kT, its interval and the radius at 1 kpc within 1%."
    kw = dict(engine="sherpa", band=(0.5, 7), gof=0, n_draws=100, distance_kpc=1.0)
    xs = fit_spectra([load_spectrum(PHA, ARF, RMF)], "tbabs*bbodyrad", start={"kT": 0.3}, **kw)
    sh = fit_spectra([load_spectrum(PHA, ARF, RMF)], "tbabs*sherpa.bbody", start={"kT": 0.3}, **kw)
    for suffix in ("", "_lo", "_hi"):
        assert v(sh, "sherpa_bbody.kT" + suffix) == pytest.approx(v(xs, "bbodyrad.kT" + suffix), rel=0.01), suffix
        # the norm is nearly degenerate with kT on 53 counts (measured: 1.25% apart at the best fit, where the two
        # statistics differ by 0.015): it agrees to 1% of its 90% interval's width
        width = 1.0344e-3 * (v(xs, "bbodyrad.norm_hi") - v(xs, "bbodyrad.norm_lo"))
        assert abs(v(sh, "sherpa_bbody.ampl" + suffix) - 1.0344e-3 * v(xs, "bbodyrad.norm" + suffix)) < 0.01 * width, suffix
    assert v(sh, "sherpa_bbody_radius") == pytest.approx(v(xs, "bbodyrad_radius"), rel=0.01)
    # bbodyrad: R_km = sqrt(norm) D_10
    assert v(xs, "bbodyrad_radius") == pytest.approx(np.sqrt(v(xs, "bbodyrad.norm")) * 0.1, rel=1e-9)


def test_goodness_of_fit_rejects_a_wrong_model(tmp_path):
    "A power-law spectrum fitted with a blackbody gets gof_p < 0.01; fitted with a power law it does not."
    import shutil
    for f in (ARF, RMF): shutil.copy(f, tmp_path / f.name)
    p = spectra.simulate_spectrum(tmp_path / "pl.pha", "tbabs*powerlaw", {"nH": 0.1, "PhoIndex": 1.5, "norm": 2e-3},
                                  10000, tmp_path / RMF.name, tmp_path / ARF.name, seed=11)
    kw = dict(band=(0.5, 7), engine="sherpa", errors=None, n_draws=10, gof=2000)
    good = fit_spectra([p], "tbabs*powerlaw", start={"PhoIndex": 2.0}, **kw)
    bad = fit_spectra([p], "tbabs*bbodyrad", start={"kT": 1.0}, **kw)
    assert v(good, "gof_p") > 0.05 and v(bad, "gof_p") < 0.01, (v(good, "gof_p"), v(bad, "gof_p"))


def test_wstat_and_cstat_formulas_reproduce_sherpa(real_with_background):
    "The statistics of the goodness-of-fit simulations are Sherpa's W-stat and cstat at the best fit."
    t = fit_spectra([real_with_background["spectrum"]], "tbabs*powerlaw", band=(0.5, 7), engine="sherpa", errors=None,
                    gof=200, n_draws=10, start={"PhoIndex": 2.0})
    jf = t.joint_fit
    a = spectra.spectrum_arrays(jf.data[0], jf.models[0])
    assert spectra.wstat_bins(a["S"], a["B"], a["mu"], a["r"]).sum() == pytest.approx(jf.result.statval, rel=1e-9)
    assert v(t, "spectrum_stat") == pytest.approx(jf.result.statval, rel=1e-9)


def test_contour_and_plots(real_with_background, tmp_path):
    "nH-PhoIndex contour (others refitted) on the real spectrum, spectra plot with background and residuals."
    t = fit_spectra([real_with_background["spectrum"]], "tbabs*powerlaw", band=(0.5, 7), engine="sherpa",
                    gof=200, n_draws=50, start={"PhoIndex": 2.0})
    c = spectra.confidence_contour(t, "tbabs.nH", "powerlaw.PhoIndex", n=6)
    assert c["delta"].shape == (6, 6) and c["delta"].min() > -0.01 and c["delta"].max() > 4.61
    fig = spectra.plot_confidence_contour(c, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10_000
    fig = spectra.plot_spectra_fit(t, tmp_path / "s.png")
    labels = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert "background (SIMULATED)" in labels and len(fig.axes) == 2


# ---- real Chandra spectra with real backgrounds: the copies sherpa's wheel installs (sherpa/astro/datastack/tests/data) ----
# 3C 273, ACIS ObsID 459 (3c273.pi with BACKFILE 3c273_bg.pi, the spectrum of CIAO's "Introduction to fitting PHA spectra"
# thread), and a Chandra Source Catalog per-source product (ObsID 4938: pha3 with its background block, arf3, rmf3).

@pytest.fixture(scope="module")
def sherpa_chandra():
    "The directory of the real Chandra spectra that the sherpa wheel installs; fails (not skips) when sherpa lost them."
    import sherpa
    d = Path(sherpa.__file__).parent / "astro" / "datastack" / "tests" / "data"
    missing = [n for n in ("3c273.pi", "3c273_bg.pi", "3c273.arf", "3c273.rmf", "acisf04938_000N002_r0043_pha3.fits") if not (d / n).exists()]
    assert not missing, f"sherpa {sherpa.__version__} no longer installs {missing} under {d}"
    return d


def test_acceptance_fit_spectra_cli_real_chandra_spectrum_with_its_background_file(sherpa_chandra, tmp_path, capsys):
    "`mwnb fit-spectra 3c273.pi --model tbabs*powerlaw --band 0.5-7`: BACKFILE read, W-stat, schema, unabsorbed flux interval, nH >= 0."
    from mwnb.cli import main
    out = tmp_path / "fit"
    assert main(["fit-spectra", str(sherpa_chandra / "3c273.pi"), "--model", "tbabs*powerlaw", "--band", "0.5-7",
                 "--engine", "sherpa", "--out", str(out)]) == 0
    assert "stat (wstat)" in capsys.readouterr().out
    t = Table.read(out / "spectral_fit.ecsv")
    prov = t.meta["provenance"][0]
    assert t["background"][0] == "3c273_bg.pi" and prov["background_simulated"] is False and prov["spectrum_simulated"] is False
    assert t.meta["stat_used"] == "wstat" and t.meta["error_method"].startswith("profile")
    # 216 background counts in the file over 1024 channels; every W-stat group has >= 1 source and >= 1 background count
    assert 0 < v(t, "background_counts") <= 216
    for c in ("tbabs.nH", "powerlaw.PhoIndex", "powerlaw.norm"):
        assert t[c].unit is not None and t[c + "_status"][0] in ("ok", "pegged_low", "pegged_high")
        assert v(t, c + "_lo") <= v(t, c) <= v(t, c + "_hi")
    # the complaint was nH = 0.043 [-0.018, 0.104]e22 from covariance errors on a real Chandra spectrum:
    # the profile interval stops at the hard limit 0 and says so (measured: 0.0195 [0, 0.0851], pegged_low)
    assert v(t, "tbabs.nH_lo") == 0.0 and t["tbabs.nH_status"][0] == "pegged_low" and v(t, "tbabs.nH_hi") < 0.2
    # a quasar's power law: Gamma within 1.5-2.5 (measured 1.95 [1.81, 2.14])
    assert 1.5 < v(t, "powerlaw.PhoIndex_lo") < v(t, "powerlaw.PhoIndex_hi") < 2.5
    lo, val, hi = v(t, "unabsorbed_flux_lo"), v(t, "unabsorbed_flux"), v(t, "unabsorbed_flux_hi")
    assert 0 < lo < val < hi and val >= v(t, "flux") and str(t["unabsorbed_flux"].unit) == "erg / (s cm2)"


@pytest.mark.parametrize("band,n_bins,expected", [((0.0, 1e4), 46, 62.12275005769554), ("filtered", 35, 39.84715083397662)])
def test_wstat_of_a_real_source_and_background_equals_sherpas_published_oracle(sherpa_chandra, band, n_bins, expected):
    "mwnb's own W-stat formula on 3c273.pi + 3c273_bg.pi (file grouping, powlaw1d 1.782/1.622e-4) = sherpa's test_wstat.py oracle."
    # oracle values: sherpa/stats/tests/test_wstat.py (test_wstat_single_scalar_grouped_all / _filtered, sherpa commit 770359b)
    from sherpa.astro.instrument import Response1D
    d = load_spectrum(sherpa_chandra / "3c273.pi", band=(0.0, 1e4), group_background=False)
    if band == "filtered":   # sherpa's filter_data(): ignore(None, 0.5), ignore(3, 4), ignore(7, None)
        d.ignore(None, 0.5); d.ignore(3, 4); d.ignore(7, None)
    src, (pl,) = spectra.build_model("sherpa.powlaw1d")
    pl.gamma, pl.ampl = 1.782, 1.622e-4
    a = spectra.spectrum_arrays(d, Response1D(d)(src))
    assert len(a["S"]) == n_bins
    assert spectra.wstat_bins(a["S"], a["B"], a["mu"], a["r"]).sum() == pytest.approx(expected, rel=1e-9)


def test_csc_per_source_spectrum_reads_the_background_block_of_its_own_file(sherpa_chandra, tmp_path):
    "A CSC pha3 names itself as BACKFILE: the background is its HDUCLAS2='BKG' block, as sherpa reads it, also when gzipped."
    import gzip
    from sherpa.astro.io import read_pha
    names = {k: f"acisf04938_000N002_r0043_{k}3.fits" for k in ("pha", "arf", "rmf")}
    for n in names.values(): (tmp_path / f"{n}.gz").write_bytes(gzip.compress((sherpa_chandra / n).read_bytes()))  # as the CSC serves them
    ref = read_pha(str(sherpa_chandra / names["pha"]), use_errors=False).get_background()   # sherpa's own reader
    d = load_spectrum(tmp_path / f"{names['pha']}.gz", arf=tmp_path / f"{names['arf']}.gz", rmf=tmp_path / f"{names['rmf']}.gz", band=(0.5, 7))
    b = d.get_background()
    assert b.counts.sum() == ref.counts.sum() == 10414 and d.counts.sum() == 2116   # not the source block again
    assert b.backscal == ref.backscal and b.exposure == ref.exposure
    assert d.mwnb_files["background"].endswith("[SPECTRUM,BKG]")
    from mwnb.chandra import fit_source_spectrum
    t = fit_source_spectrum(tmp_path / f"{names['pha']}.gz", arf=tmp_path / f"{names['arf']}.gz", rmf=tmp_path / f"{names['rmf']}.gz")
    assert t.meta["stat_used"] == "wstat" and 1.5 < v(t, "powerlaw.PhoIndex") < 2.6 and v(t, "tbabs.nH_lo") >= 0


def test_a_spectrum_naming_itself_as_background_without_a_background_block_is_refused(tmp_path):
    "BACKFILE = the file itself, but no HDUCLAS2='BKG' block: a BadInputFileError saying to give bkg=."
    from mwnb.errors import BadInputFileError
    src = fits.open(PHA)
    src["SPECTRUM"].header["BACKFILE"] = "self.pha"
    src.writeto(tmp_path / "self.pha")
    import shutil
    for f in (ARF, RMF): shutil.copy(f, tmp_path / f.name)
    with pytest.raises(BadInputFileError, match="no background block"):
        load_spectrum(tmp_path / "self.pha", ARF, RMF)


def test_xspec_library_leaves_healpys_cfitsio_alone(tmp_path):
    "The XSPEC library loads RTLD_LOCAL: healpy, imported after it, reads a map with its own cfitsio (no version mismatch)."
    import subprocess, sys
    pytest.importorskip("healpy")
    wmap = data_dir() / "healpy-wmap" / "wmap_band_iqumap_r9_7yr_W_v4_udgraded32.fits"
    code = ("import ctypes, numpy as np\nfrom mwnb.spectra import xspec_function\n"
            "print(xspec_function('powerlaw')(np.array([1.0, 2.0]), np.array([2.0]))[0])\n"
            "assert ctypes.RTLD_GLOBAL == 256\nimport healpy\n"
            f"print(healpy.read_map({str(wmap)!r}).size)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["0.5", "12288"]   # powerlaw Gamma=2 over 1-2 keV: 1/1 - 1/2; Nside 32 map
    assert "version mismatch between CFITSIO" not in r.stdout + r.stderr


# ---- ties as XSPEC users know them: all (one parameter set), none (each on its own), or named parameters ----

def test_tie_all_is_one_parameter_set_and_none_fits_each_spectrum_from_it(tpyx_spectra):
    "tie='all': every row equal; tie='none': rows differ, started from the tied fit, whose statistic it cannot exceed."
    kw = dict(model="tbabs*(bbody+bremss)", engine="sherpa", start={"bbody.kT": 0.1, "bremss.kT": 1.0}, errors="covar",
              gof=0, n_draws=10, limits={"bbody.kT": (0.01, 0.2), "bremss.kT": (0.2, 20)})
    tied = fit_spectra(tpyx_spectra[:3], tie="all", **kw)
    each = fit_spectra(tpyx_spectra[:3], tie="none", **kw)
    pars = [c for c in tied.colnames if c.count(".") == 1 and not c.endswith(("_lo", "_hi", "_status"))]
    assert len(pars) == 5 and tied.meta["tie"] == "all" and each.meta["tie"] == "none"
    for c in pars:
        assert len(set(np.asarray(tied[c], float))) == 1, c            # one parameter set
        assert len(set(np.asarray(each[c], float))) == 3, c            # three
    assert each.meta["tied_stat"] == pytest.approx(v(tied, "stat"), rel=1e-6)
    assert v(each, "stat") <= v(tied, "stat") + 1e-6
    assert int(tied["dof"][0]) - int(each["dof"][0]) == 10             # 15 free parameters instead of 5


def test_unknown_tie_names_are_refused_naming_the_parameter(tpyx_spectra, capsys):
    "--tie kT for tbabs*powerlaw: no such parameter -> exit 1 with one typed line naming it; nothing is fitted untied."
    from mwnb.cli import main
    from mwnb.errors import BadParameterError
    with pytest.raises(BadParameterError, match="'kT'"):
        fit_spectra(tpyx_spectra[:2], "tbabs*powerlaw", tie=["kT"], engine="sherpa")
    rc = main(["fit-spectra", *map(str, tpyx_spectra[:2]), "--model", "tbabs*powerlaw", "--tie", "kT", "--engine", "sherpa"])
    err = capsys.readouterr().err
    assert rc != 0 and "'kT'" in err and "no parameter of the model" in err and len(err.strip().splitlines()) == 1
    assert spectra.resolve_tie("nH", ["tbabs.nH", "powerlaw.PhoIndex"]) == ["tbabs.nH"]
    assert spectra.resolve_tie(["all"], ["tbabs.nH", "powerlaw.PhoIndex"]) == ["tbabs.nH", "powerlaw.PhoIndex"]
    assert spectra.resolve_tie("none", ["tbabs.nH"]) == []


def test_cli_tie_all_and_none_with_response_overrides(tpyx_spectra, tmp_path, capsys):
    "`mwnb fit-spectra A B --tie all` (rows equal) and `--tie none` (rows differ); --rmf/--arf override RESPFILE/ANCRFILE."
    from mwnb.cli import main
    from astropy.io import fits as _fits
    a, b = tpyx_spectra[:2]
    hdr = _fits.getheader(a, "SPECTRUM")
    rmf, arf = a.parent / hdr["RESPFILE"], a.parent / hdr["ANCRFILE"]
    blank = tmp_path / "noresp.pha"   # the same spectrum with no responses named: only --rmf/--arf can supply them
    with _fits.open(a) as h:
        h["SPECTRUM"].header["RESPFILE"] = "none"; h["SPECTRUM"].header["ANCRFILE"] = "none"
        h["SPECTRUM"].header["BACKFILE"] = str(a.parent / hdr["BACKFILE"])
        h.writeto(blank)
    base = ["--engine", "sherpa", "--errors", "covar", "--start", "bbody.kT=0.1", "bremss.kT=1"]
    for tie in ("all", "none"):
        out = tmp_path / tie
        assert main(["fit-spectra", str(blank), str(b), "--tie", tie, "--rmf", str(rmf), str(rmf),
                     "--arf", str(arf), str(arf), "--out", str(out), *base]) == 0
        t = Table.read(out / "spectral_fit.ecsv")
        assert t.meta["tie"] == tie and t.meta["provenance"][0]["rmf"] == str(rmf)
        assert (v(t, "bbody.kT", 0) == v(t, "bbody.kT", 1)) == (tie == "all")
    assert "tie: all" in capsys.readouterr().out
    assert main(["fit-spectra", str(blank), "--engine", "sherpa", "--out", str(tmp_path / "x")]) != 0   # no RMF at all


def test_comparison_with_published_values_takes_the_tied_fit_only(tpyx_spectra):
    "compare_parameters refuses a fit with per-spectrum parameters; on the tied fit it gives differences in interval units."
    from mwnb.errors import BadParameterError
    from mwnb.demo.swift import simulation_inputs
    kw = dict(model="tbabs*(bbody+bremss)", engine="sherpa", start={"bbody.kT": 0.1, "bremss.kT": 1.0}, errors="covar",
              gof=0, n_draws=10)
    ref = {k: simulation_inputs(tpyx_spectra[0])[k] for k in ("tbabs.nH", "bbody.kT", "bremss.kT")}
    with pytest.raises(BadParameterError, match="every parameter tied"):
        spectra.compare_parameters(fit_spectra(tpyx_spectra[:2], tie=["nH"], **kw), ref, "input")
    t = fit_spectra(tpyx_spectra[:2], tie="all", **kw)
    c = spectra.compare_parameters(t, ref, "input")
    assert list(c["parameter"]) == list(ref) and c.meta["tie"] == "all"
    for row in c:
        half = (row["fitted_hi"] - row["fitted"]) if row["input"] >= row["fitted"] else (row["fitted"] - row["fitted_lo"])
        assert row["difference_in_intervals"] == pytest.approx((row["input"] - row["fitted"]) / half)


def test_a_step_on_one_spectrum_refolds_that_spectrum_only(tpyx_spectra):
    "The joint fit's per-spectrum cache: changing spectrum 2's bbody.kT refolds one response, changing the shared nH all three."
    jf = spectra.sherpa_joint_fit(tpyx_spectra[:3], tie=["nH"], start={"bbody.kT": 0.1})
    folds = []
    for i, m in enumerate(jf.models):
        inner = m.model
        m.model = type("Counting", (), {"calc": lambda self, p, *a, _i=i, _m=inner, **k: folds.append(_i) or _m.calc(p, *a, **k),
                                        "__call__": lambda self, *a, **k: None})()
    stat = spectra._stat("cstat", jf.data)
    total = lambda: sum(spectra._spectrum_stat(stat, d, m) for d, m in zip(jf.data, jf.models))
    total(); folds.clear()
    jf.components[1][1].kT.val = 0.08; total()
    assert folds == [1]
    folds.clear(); jf.components[0][0].nH.val = 0.3; total()
    assert sorted(folds) == [0, 1, 2]
    folds.clear(); total()
    assert folds == []


def test_fit_flags_name_limits_and_swapped_components():
    "at_limit for a parameter on its bound, swapped when the blackbody is hotter than the bremsstrahlung."
    assert spectra.fit_flags({"tbabs.nH": (0.0, 0.0, 1e6), "bbody.kT": (0.05, 0.01, 0.2)}) == "at_limit:tbabs.nH"
    swapped = {"bbody.kT": (0.396, 1e-4, 200), "bremss.kT": (0.074, 1e-4, 200)}   # the 00031968061 fit before ordering
    assert spectra.fit_flags(swapped, (("bbody.kT", "bremss.kT"),)) == "swapped:bbody.kT>bremss.kT"
    assert spectra.fit_flags({"bbody.kT": (0.047, 0.01, 0.2), "bremss.kT": (1.4, 0.2, 20)}, (("bbody.kT", "bremss.kT"),)) == ""


# ---- spectra that cannot be fitted are typed errors naming the file and the problem ----

def _bad_copy(src, out, edit):
    from astropy.io import fits as _fits
    with _fits.open(src) as h:
        h = _fits.HDUList([x.copy() for x in h])
    edit(h); h.writeto(out, overwrite=True)
    return out


@pytest.mark.parametrize("problem,match", [("zero", "every channel of COUNTS is zero"), ("nocounts", "no COUNTS or RATE"),
                                           ("negative", "negative in"), ("truncated", "truncated"),
                                           ("badrmf", "RMF .* cannot be read")])
def test_spectra_that_cannot_be_fitted_are_bad_input_files(tpyx_spectra, tmp_path, problem, match, capsys):
    "All-zero counts, no COUNTS/RATE column, negative counts, truncated data, an unreadable RESPFILE: BadInputFileError."
    from mwnb.errors import BadInputFileError
    from mwnb.cli import main
    from astropy.io import fits as _fits
    import shutil
    src = tpyx_spectra[0]
    for f in src.parent.iterdir():
        if f.suffix in (".rmf", ".arf") or "pobk" in f.name: shutil.copy(f, tmp_path / f.name)
    out = tmp_path / "bad.pha"
    if problem == "zero":
        _bad_copy(src, out, lambda h: h["SPECTRUM"].data["COUNTS"].__setitem__(slice(None), 0))
    elif problem == "negative":
        _bad_copy(src, out, lambda h: h["SPECTRUM"].data["COUNTS"].__setitem__(5, -3))
    elif problem == "nocounts":
        def drop(h):
            t = h["SPECTRUM"]; cols = [c for c in t.columns if c.name != "COUNTS"]
            h["SPECTRUM"] = _fits.BinTableHDU.from_columns(cols, header=t.header, name="SPECTRUM")
        _bad_copy(src, out, drop)
    elif problem == "truncated":
        data = src.read_bytes(); out.write_bytes(data[: len(data) - 2 * 2880])
    else:
        _bad_copy(src, out, lambda h: h["SPECTRUM"].header.__setitem__("RESPFILE", "broken.rmf"))
        (tmp_path / "broken.rmf").write_bytes(b"SIMPLE  =                    T" + b" " * 100)
    with pytest.raises(BadInputFileError, match=match) as e:
        fit_spectra([out], engine="sherpa", errors=None, gof=0, n_draws=10)
    assert "bad.pha" in str(e.value)
    rc = main(["fit-spectra", str(out), "--engine", "sherpa", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "bad.pha" in err[0] and re.search(match, err[0])


# ---- the PyXspec adapter, against a double of the `xspec` module that keeps XSPEC's linking rules ----
# PyXspec manual (https://heasarc.gsfc.nasa.gov/docs/software/xspec/python/html/model.html, "Parameter" and "Linking"):
# data groups 2..n start linked to group 1 ("= p1"); a link is an expression on another parameter; untie() clears it.
# The double refuses a new value on a linked parameter, so an adapter that sets start values before untying fails.
# PyXspec itself has never run here (HEASoft is not installable): this checks the adapter's order of commands only.

class _FakeParam:
    def __init__(self, session, group, index, name, unit, values):
        self.session, self.group, self.index, self.name, self.unit = session, group, index, name, unit
        self._values, self._link, self.frozen, self.error = list(values), "", False, (0.0, 0.0, "FFFFFFFFF")

    def _master(self):
        return self.session.by_global(int(self._link.lstrip("=p "))) if self._link else self

    @property
    def values(self):
        return [self._master()._values[0]] + self._values[1:]

    @values.setter
    def values(self, v):
        if self._link:
            raise RuntimeError(f"parameter {self.name} of group {self.group} is linked ({self.link}): untie it first")
        if isinstance(v, (int, float)): self._values[0] = float(v)
        else: self._values = [float(x) for x in v] + self._values[len(v):]

    @property
    def link(self): return f"= p{self._link}" if self._link else ""

    @link.setter
    def link(self, expr):
        k = str(expr).strip().lstrip("=").strip().lstrip("pP")
        if not k.isdigit(): raise RuntimeError(f"unsupported link expression {expr!r} in the double")
        self._link = k

    def untie(self): self._link = ""


class _FakeComponent:
    def __init__(self, names): self.parameterNames = names


_FAKE_MODELS = {"tbabs": ("TBabs", [("nH", "10^22", [1.0, 0.001, 0.0, 0.0, 1e5, 1e6])]),
                "bbody": ("bbody", [("kT", "keV", [3.0, 0.01, 1e-4, 0.01, 100, 200]), ("norm", "", [1.0, 0.01, 0, 0, 1e24, 1e24])]),
                "bremss": ("bremss", [("kT", "keV", [7.0, 0.01, 1e-4, 0.01, 100, 200]), ("norm", "", [1.0, 0.01, 0, 0, 1e24, 1e24])])}


class _FakeModel:
    def __init__(self, session, group, expr):
        import re
        self.session, self.group, self.componentNames, self._pars = session, group, [], []
        for word in re.findall(r"[A-Za-z]+", expr):
            cname, pars = _FAKE_MODELS[word.lower()]
            comp = _FakeComponent([p[0] for p in pars])
            for pname, unit, values in pars:
                par = _FakeParam(session, group, len(self._pars) + 1, pname, unit, values)
                setattr(comp, pname, par); self._pars.append(par)
            setattr(self, cname, comp); self.componentNames.append(cname)
        self.nParameters = len(self._pars)

    def __call__(self, i): return self._pars[i - 1]

    def untie(self):
        for p in self._pars: p.untie()


class _FakeSpectrum:
    def __init__(self, path):
        self.fileName, self.exposure, self.values = path, 1000.0, np.full(10, 0.05)
        self.response, self.background, self.flux, self.ignored = type("R", (), {"arf": None})(), None, (), []

    def ignore(self, what): self.ignored.append(what)


class _FakeAllData:
    def __init__(self, session): self.session, self.spectra, self.ignored = session, {}, []
    def __call__(self, what):
        if isinstance(what, int): return self.spectra[what]
        g, path = str(what).split(" ", 1)
        self.spectra[int(g.split(":")[0])] = _FakeSpectrum(path)
    def clear(self): self.spectra.clear()
    def ignore(self, what): self.ignored.append(what)
    @property
    def nGroups(self): return len(self.spectra)


class _FakeAllModels:
    def __init__(self, session): self.session, self.models = session, {}
    def __call__(self, g): return self.models[g]
    def clear(self): self.models.clear()
    def calcFlux(self, what):
        self.session.calls.append(("calcFlux", what))
        for g, m in self.models.items():   # absorbed flux: (bbody + bremss norms) x exp(-nH), in 1e-11 erg/cm2/s
            nh = m.TBabs.nH.values[0]
            f = 1e-11 * (m.bbody.norm.values[0] + m.bremss.norm.values[0]) * np.exp(-nh)
            self.session.AllData.spectra[g].flux = (f, 0.9 * f, 1.1 * f, 0.0, 0.0, 0.0)


class _FakeFit:
    def __init__(self, session):
        self.session, self.statistic, self.dof, self.statMethod, self.query, self.nIterations = session, 100.0, 90, "", "", 0
    def perform(self):   # a "fit": every free, unlinked kT moves to 0.05 keV (bbody) / 1.4 keV (bremss)
        self.session.calls.append(("perform",))
        for m in self.session.AllModels.models.values():
            for comp, kT in (("bbody", 0.05), ("bremss", 1.4)):
                p = getattr(m, comp).kT
                if not p.link: p.values = kT
    def error(self, what):
        self.session.calls.append(("error", what))
        for k in map(int, what.split()[3:]):
            p = self.session.by_global(k)
            if p.link: raise RuntimeError(f"error on linked parameter {k}")
            v = p.values[0]; p.error = (0.9 * v, 1.1 * v, "FFFFFFFFF")
    def goodness(self, n): return 40.0
    def steppar(self, what):   # "ix x0 x1 steps iy y0 y1 steps": a paraboloid around the middle of the grid
        w = what.split(); self.grid = (int(w[3]) + 1, int(w[7]) + 1)
    def stepparResults(self, what):
        nx, ny = self.grid
        gx, gy = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny), indexing="ij")
        return list((20 * (gx ** 2 + gy ** 2)).ravel())   # XSPEC lists the last parameter fastest


class FakeXspec:
    "A stand-in for the `xspec` module (data groups, models, links, fit/error/flux/plot calls recorded)."
    def __init__(self):
        import importlib.machinery
        self.__spec__ = importlib.machinery.ModuleSpec("xspec", None)
        self.calls = []
        self.AllData, self.AllModels, self.Fit = _FakeAllData(self), _FakeAllModels(self), _FakeFit(self)
        self.Xset = type("Xset", (), {"chatter": 10, "parallel": type("P", (), {})()})()
        session = self
        class Plot:
            xAxis, background = "", False
            def __call__(self, what): session.calls.append(("plot", what))
            def x(self, g): return np.linspace(0.3, 7, 10)
            def xErr(self, g): return np.full(10, 0.1)
            def y(self, g): return np.full(10, 0.05)
            def yErr(self, g): return np.full(10, 0.01)
            def model(self, g): return np.full(10, 0.05)
        self.Plot = Plot()

    def Model(self, expr):
        self.AllModels.models = {g: _FakeModel(self, g, expr) for g in self.AllData.spectra}
        npar = self.AllModels(1).nParameters
        for g, m in self.AllModels.models.items():   # XSPEC: groups >= 2 start linked to group 1
            if g > 1:
                for p in m._pars: p.link = str(p.index)
        return self.AllModels(1)

    def by_global(self, k):
        npar = self.AllModels(1).nParameters
        g, i = divmod(k - 1, npar)
        return self.AllModels(g + 1)(i + 1)

    def links(self):
        return {(g, p.index): p.link for g, m in self.AllModels.models.items() for p in m._pars}


@pytest.fixture
def fake_xspec(monkeypatch):
    import sys
    fake = FakeXspec()
    monkeypatch.setitem(sys.modules, "xspec", fake)
    return fake


def test_the_xspec_double_refuses_a_value_on_a_linked_parameter(tpyx_spectra, fake_xspec):
    "XSPEC's rule, kept by the double: group 2 starts linked to group 1, and a linked parameter takes no value until untied."
    xs = fake_xspec
    xs.AllData(f"1:1 {tpyx_spectra[0]}"); xs.AllData(f"2:2 {tpyx_spectra[1]}")
    xs.Model("tbabs*(bbody+bremss)")
    assert xs.AllModels(2).bbody.kT.link == "= p2"
    with pytest.raises(RuntimeError, match="linked"): xs.AllModels(2).bbody.kT.values = 0.1
    xs.AllModels(2).untie(); xs.AllModels(2).bbody.kT.values = 0.1
    assert xs.AllModels(2).bbody.kT.values[0] == 0.1 and xs.AllModels(1).bbody.kT.values[0] == 3.0


@pytest.mark.parametrize("tie", [["nH"], "none", "all"])
def test_pyxspec_adapter_sets_values_only_on_untied_parameters_and_keeps_links(tpyx_spectra, fake_xspec, tie, tmp_path):
    "fit_spectra(engine='xspec') through the double: starts and limits set after untie, ties as asked, links intact after fluxes."
    xs = fake_xspec
    t = fit_spectra(tpyx_spectra[:3], "tbabs*(bbody+bremss)", tie=tie, engine="xspec", start={"bbody.kT": 0.1, "nH": 0.2},
                    limits={"bbody.kT": (0.01, 0.2)}, gof=100)
    assert t.meta["engine"] == "xspec" and len(t) == 3
    links = xs.links()
    want = {"all": {1, 2, 3, 4, 5}, "none": set()}.get(tie if isinstance(tie, str) else "", {1})
    assert {i for (g, i), link in links.items() if g == 2 and link} == want, links
    assert all(link == (f"= p{i}" if i in want else "") for (g, i), link in links.items() if g > 1)
    # the unabsorbed flux: the master nH held at 0 for the moment of calcFlux, restored after (links unchanged)
    assert v(t, "unabsorbed_flux") == pytest.approx(v(t, "flux") * np.exp(xs.AllModels(1).TBabs.nH.values[0]), rel=1e-9)
    assert xs.AllModels(1).TBabs.nH.values[0] == pytest.approx(0.2)
    # per-component fluxes: the other norms held at 0
    assert v(t, "bbody_flux") + v(t, "bremss_flux") == pytest.approx(v(t, "flux"), rel=1e-9)
    # XSPEC's 90% error on the free, unlinked parameters only; its status string parsed as the Sherpa engine's
    errors = [c for c in xs.calls if c[0] == "error"]
    assert len(errors) == 1 and errors[0][1].startswith("maximum 1000 2.706 ")
    assert set(t["bbody.kT_status"]) == {"ok"} and v(t, "bbody.kT_lo") < v(t, "bbody.kT") < v(t, "bbody.kT_hi")
    assert xs.Xset.parallel.leven >= 1 and xs.Fit.statMethod == "cstat" and xs.Fit.query == "no"
    assert xs.AllData.ignored == ["bad"] and xs.AllData(1).ignored == ["**-0.3 7.0-**"]
    assert t.meta["tie"] == {"all": "all", "none": "none"}.get(tie if isinstance(tie, str) else "", "tbabs.nH")
    assert v(t, "gof_p") == pytest.approx(0.6)   # Fit.goodness: 40% of simulations below the data's statistic
    paths = spectra.save_fit_results(t, tmp_path)   # XSPEC's own Plot arrays become the spectra figure
    assert paths["spectra_plot"].stat().st_size > 10_000
    limits = xs.AllModels(3).bbody.kT._master()._values
    assert (limits[2], limits[5]) == (0.01, 0.2)


def test_pyxspec_fit_is_small_functions():
    "The adapter is a set of translations (load, settings, ties, fit phases, errors, fluxes, rows), none of them long."
    import inspect
    for f in (spectra.pyxspec_fit, spectra._xspec_load, spectra._xspec_link_to_first, spectra._xspec_fit_phases,
              spectra._xspec_fluxes, spectra._xspec_row):
        assert len(inspect.getsource(f).splitlines()) < 45, f.__name__


def test_xspec_contour_reads_steppar_in_the_form_of_sherpas(tpyx_spectra, fake_xspec, tmp_path):
    "xspec_contour: global parameter indices of the chosen spectrum, a grid around its intervals, XSPEC's delstat array."
    t = fit_spectra(tpyx_spectra[:2], "tbabs*(bbody+bremss)", tie="none", engine="xspec", start={"bbody.kT": 0.1}, gof=0)
    c = spectra.xspec_contour(t, "tbabs.nH", "bbody.kT", spectrum=1, n=11)
    assert c["delta"].shape == (11, 11) and c["delta"].min() == 0.0 and spectra.contour_closes(c)
    assert c["units"] == ["1e+22 / cm2", "keV"] and c["method"] == "XSPEC steppar"
    spectra.plot_confidence_contour(c, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10_000
