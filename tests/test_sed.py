"""The combined SED and its PWN model: unit conversions against independent calculations, upper limits
and provenance through combine_sed and the ECSV, the literature table's references, the stand-in labels, and a naima
fit that recovers parameters chosen here from an SED computed with naima directly (not with mwnb.sed's model)."""
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
import astropy.units as u
from astropy.table import QTable, Table
from scipy.integrate import quad

from mwnb import sed as S
from mwnb.errors import BadInputFileError, BadParameterError

FLUX = u.erg / u.cm**2 / u.s
D_LMC = 49.59 * u.kpc


# ---------------------------------------------------------------- unit handling

def test_xray_band_flux_to_nufnu_independent():
    "1e-12 erg/cm2/s in 2-10 keV with photon index 2 -> nuF_nu at the log-centre sqrt(2*10) = 4.47 keV, by direct integration."
    # dN/dE = K E^-2 with int_2^10 E dN/dE dE = 1e-12 erg/cm2/s; nuF_nu(E0) = E0^2 K E0^-2 = K
    K = 1e-12 / quad(lambda E: E * E ** -2.0, 2.0, 10.0)[0]
    assert K == pytest.approx(6.2133e-13, rel=1e-4)
    p = S.xray_point(1e-12 * FLUX, 0.8e-12 * FLUX, 1.3e-12 * FLUX, (2, 10), photon_index=2.0, archive="user", stand_in=False)
    assert p["energy"][0] == pytest.approx(4472.136, rel=1e-6)                      # eV
    assert p["flux"][0] == pytest.approx(K, rel=1e-9)
    assert str(p["flux"].unit) == "erg / (s cm2)" and str(p["energy"].unit) == "eV"
    # the 90% interval sides become 1-sigma errors (/1.6449), scaled like the flux
    assert p["flux_error_lo"][0] == pytest.approx(0.2e-12 / np.log(5) / 1.644854, rel=1e-5)
    assert p["flux_error_hi"][0] == pytest.approx(0.3e-12 / np.log(5) / 1.644854, rel=1e-5)
    assert (p["energy_lo"][0], p["energy_hi"][0]) == (2000.0, 10000.0)
    # another index, against the same integral done numerically
    g = 1.6
    K16 = 1e-12 / quad(lambda E: E * E ** -g, 0.5, 7.0)[0]
    e0 = np.sqrt(3.5)
    assert S.band_flux_to_nufnu(1e-12, (0.5, 7.0), g).value == pytest.approx(K16 * e0 ** (2 - g), rel=1e-9)


def test_radio_flux_density_and_wmap_upper_limit():
    "nu S_nu in erg/cm2/s; a WMAP 2-sigma limit stays a limit at the one-sided 0.977 CL with its label."
    assert S.flux_density_to_nufnu(22.8 * u.GHz, 1 * u.Jy).value == pytest.approx(22.8e9 * 1e-23)
    w = dict(band="K", nu_ghz=22.8, flux_jy=-0.3, flux_err_jy=1.5, upper_limit=True, flux_ul_jy=3.0, ul_sigma=2.0,
             stand_in="wmap_band_smth_iqumap_r9_9yr_K_v5.fits", uri="s3://nasa-lambda/x.fits", note="aperture")
    r = S.radio_points(w)
    assert bool(r["ul"][0]) and r["ul_cl"][0] == pytest.approx(0.97725, abs=1e-5)
    assert r["flux"][0] == pytest.approx(22.8e9 * 3.0e-23)
    assert np.isnan(r["flux_error_lo"][0]) and bool(r["stand_in"][0])
    assert "wmap_band_smth_iqumap_r9_9yr_K_v5.fits" in r["provenance"][0] and "one-sided" in r["provenance"][0]


def test_literature_table_has_references_and_units():
    "The default B0453-685 table: columns with units, a reference column, empty with a note naming the papers."
    t = S.b0453_radio_literature()
    assert len(t) == 0 and "reference" in t.colnames
    assert (t["frequency"].unit, t["flux_density"].unit, t["flux_density_err"].unit) == (u.GHz, u.Jy, u.Jy)
    assert "2003ApJ...594L.111G" in t.meta["sources"] and "2012A&A...543A.154H" in t.meta["sources"]
    assert "empty" in t.meta["note"]
    pts = S.literature_radio_points()
    assert len(pts) == 0 and "No published flux density" in pts.meta["note"]
    # filled with TEST values: references are kept, units converted; a row without reference is refused
    mine = S.literature_radio_table([(1.4, 0.030, 0.003, False, np.nan, "PWN", "test", "TEST-REF-A")])
    lp = S.literature_radio_points(mine)
    assert lp["reference"][0] == "TEST-REF-A" and lp["archive"][0] == "literature" and not lp["stand_in"][0]
    assert lp["flux"][0] == pytest.approx(1.4e9 * 0.030e-23)
    mine["reference"][0] = " "
    with pytest.raises(BadParameterError, match="reference"):
        S.literature_radio_points(mine)


def _lat():
    t = QTable()
    t["e_min"], t["e_ref"], t["e_max"] = [1, 10, 100] * u.GeV, [3.2, 32, 320] * u.GeV, [10, 100, 1000] * u.GeV
    t["e2dnde"] = [2e-13, 1e-13, np.nan] * FLUX
    t["e2dnde_err"] = [0.5e-13, 0.4e-13, np.nan] * FLUX
    t["e2dnde_ul"] = [3e-13, 2e-13, 2.5e-13] * FLUX
    t["is_ul"] = [False, False, True]
    t["ts"] = [30.0, 9.0, 1.0]
    return t


def test_gamma_points_need_a_stated_confidence_level():
    "LAT limits without a confidence level are refused; with it, they are kept as limits."
    with pytest.raises(BadParameterError, match="confidence level"):
        S.gamma_points(_lat(), stand_in=False)
    g = S.gamma_points(_lat(), ul_cl=0.95, stand_in=False)
    assert list(g["ul"]) == [False, False, True] and g["ul_cl"][2] == 0.95 and g["flux"][2] == pytest.approx(2.5e-13)
    assert g["energy"][0] == pytest.approx(3.2e9) and g["energy_lo"][0] == pytest.approx(1e9)


def test_xray_points_from_a_fit_table():
    "The fit table of mwnb.chandra.fit_source_spectrum (its flux columns, meta and PhoIndex) through S.sed_xray_flux."
    t = Table()
    for c, v in dict(flux=2e-13, flux_lo=1.8e-13, flux_hi=2.3e-13, unabsorbed_flux=4e-13, unabsorbed_flux_lo=3.5e-13,
                     unabsorbed_flux_hi=4.6e-13).items():
        t[c] = [v] * FLUX
    t["powerlaw.PhoIndex"] = [1.7]
    t.meta.update(flux_band_keV=[0.5, 7.0], confidence="90%", model="tbabs*powerlaw", label="", archive="live")
    x = S.xray_points(t)
    assert x["flux"][0] == pytest.approx(S.band_flux_to_nufnu(4e-13, (0.5, 7.0), 1.7).value, rel=1e-9)
    assert "photon index 1.7 (fitted)" in x["provenance"][0]
    t.meta["region"] = 'CSC aperture: ELLIPSE with radii [12.0, 9.0] sky pixels'
    assert "fit in CSC aperture: ELLIPSE with radii [12.0, 9.0]" in S.xray_points(t)["provenance"][0]   # the region used


def _lat_result(ts=16.0, ra=73.41, dec=-68.49):
    from astropy.table import QTable
    return {"engine": "gammapy", "ts": ts, "index": 2.1, "index_err": 0.2,
            "localisation": {"ra": ra, "dec": dec, "ra_err": 0.05, "dec_err": 0.02},
            "tables": {"target": QTable({"flux": [2e-9] * u.Unit("cm-2 s-1"), "flux_err": [5e-10] * u.Unit("cm-2 s-1"),
                                         "e_min": [300.0] * u.MeV, "e_max": [2e6] * u.MeV})}}


def test_comparison_with_eagle_2023_cites_every_paper_value_and_leaves_unread_ones_empty(tmp_path):
    cmp = S.compare_with_paper(_lat_result(ts=16.0))
    row = {r["quantity"]: r for r in cmp}
    assert row["significance"]["this_run"] == pytest.approx(4.0) and row["significance"]["paper"] == 4.0   # sqrt(TS); '~4 sigma'
    assert (row["e_min"]["paper"], row["e_max"]["paper"]) == (300.0, 2.0e6)
    assert all("2302.01836" in r["reference"] or "heasarc-tutorials" in r["reference"] for r in cmp)
    assert np.isnan(row["ts"]["paper"]) and "not read" in row["ts"]["note"]          # no number that was not read
    assert row["flux"]["this_run"] == pytest.approx(2e-9) and row["photon_index"]["this_run_err"] == 0.2
    assert cmp.meta["comparable"] and cmp.meta["offset_from_pwn_arcsec"] == pytest.approx(
        SkyCoord(73.41, -68.49, unit="deg").separation(SkyCoord(73.408, -68.489, unit="deg")).arcsec, rel=1e-6)
    cmp.write(tmp_path / "b0453_vs_eagle2023.ecsv")
    back = Table.read(tmp_path / "b0453_vs_eagle2023.ecsv")
    assert back.meta["comparable"] is True and len(back) == len(cmp)
    stand = S.compare_with_paper(_lat_result(ts=759.0, ra=272.46, dec=-23.54), stand_in="PSR J1809-2332")
    assert stand.meta["comparable"] is False and "CANNOT be compared" in stand.meta["note"]


# ---------------------------------------------------------------- combine, provenance, ECSV

def _parts(monkeypatch, archive="local"):
    monkeypatch.setenv("MWNB_ARCHIVE", archive)
    radio = S.radio_points(dict(band="K", nu_ghz=22.8, flux_jy=0.1, flux_err_jy=1.0, upper_limit=True, flux_ul_jy=2.1,
                                ul_sigma=2.0, stand_in="", uri="map.fits", note=""))
    lit = S.literature_radio_points(S.literature_radio_table([(4.8, 0.02, 0.002, False, np.nan, "PWN", "test", "TEST-REF")]))
    xray = S.xray_points(dict(e_min_keV=0.5, e_max_keV=7.0, unabsorbed_flux=4e-13, unabsorbed_flux_lo=3.5e-13,
                              unabsorbed_flux_hi=4.6e-13, confidence="90%", model="tbabs*powerlaw",
                              label="STAND-IN: Swift-XRT spectrum of another source", archive="demo"))
    gamma = S.gamma_points(_lat(), ul_cl=0.95)
    return radio, lit, xray, gamma


def test_combine_keeps_upper_limits_and_provenance(monkeypatch):
    radio, lit, xray, gamma = _parts(monkeypatch, "local")
    t = S.combine_sed(radio, lit, xray, gamma, target="B0453-685", require_regimes=S.REGIMES)
    assert len(t) == 1 + 1 + 1 + 3 and list(t["energy"]) == sorted(t["energy"])
    assert int(t["ul"].sum()) == 2 and sorted(t["ul_cl"][t["ul"]]) == pytest.approx([0.95, 0.97725], abs=1e-5)
    by_band = {b: set(t["archive"][t["band"] == b]) for b in S.REGIMES}
    assert by_band == {"radio": {"local demo archive", "literature"}, "X-ray": {"local demo archive"},
                       "gamma-ray": {"local demo archive"}}
    # every archive point of the local run is a stand-in; the literature point is not
    assert list(t["stand_in"][t["archive"] == "literature"]) == [False]
    assert all(t["stand_in"][t["archive"] != "literature"])
    assert "Swift-XRT spectrum of another source" in t["provenance"][t["band"] == "X-ray"][0]
    assert t.meta["stand_in"] and t.meta["label"] == "STAND-IN inputs (not B0453-685): 5 of 6 points"
    assert t.meta["regimes"] == ["radio", "X-ray", "gamma-ray"] and t.meta["n_upper_limits"] == 2
    with pytest.raises(BadParameterError, match="radio"):
        S.combine_sed(xray, gamma, target="B0453-685", require_regimes=S.REGIMES)


def test_live_archive_points_are_not_stand_ins(monkeypatch):
    radio, lit, xray, gamma = _parts(monkeypatch, "live")
    assert not radio["stand_in"][0] and not any(gamma["stand_in"]) and radio["archive"][0] == "live archive"
    assert xray["stand_in"][0]                                     # the fit's own STAND-IN label still counts
    t = S.combine_sed(radio, gamma, target="B0453-685")
    assert not t.meta["stand_in"] and t.meta["label"] == ""


def test_ecsv_round_trip_keeps_units_limits_and_meta(monkeypatch, tmp_path):
    t = S.combine_sed(*_parts(monkeypatch, "local"), target="B0453-685")
    files = S.write_sed(t, tmp_path / "sed.ecsv", csv=True)
    back = S.read_sed(files["ecsv"])
    assert back.colnames == list(S.SED_COLUMNS)
    for c, (unit, dtype, _) in S.SED_COLUMNS.items():
        assert (str(back[c].unit) if back[c].unit else None) == (str(u.Unit(unit)) if unit else None), c
    assert back["ul"].dtype == bool and back["stand_in"].dtype == bool
    np.testing.assert_array_equal(back["flux"], t["flux"])
    np.testing.assert_array_equal(back["ul_cl"][back["ul"]], t["ul_cl"][t["ul"]])
    assert list(back["provenance"]) == list(t["provenance"]) and back.meta["label"] == t.meta["label"]
    assert back["flux"].description.startswith("nuF_nu")
    assert Table.read(files["csv"], format="ascii.csv")["flux"][0] == pytest.approx(t["flux"][0])
    (tmp_path / "bad.ecsv").write_text("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: x, datatype: int64}\nx\n1\n")
    with pytest.raises(BadInputFileError, match="not an mwnb SED"):
        S.read_sed(tmp_path / "bad.ecsv")


# ---------------------------------------------------------------- the naima fit

TRUTH = dict(log10_amplitude=34.3, alpha=2.4, log10_e_cutoff_TeV=1.8, log10_B_uG=0.8)


def synthetic_sed(rel_err=0.1, noise_seed=None):
    """An SED computed with naima directly from TRUTH at radio (1.4, 4.8, 23 GHz), X-ray (1, 3, 8 keV) and 1 GeV-3 TeV,
    10% errors, one gamma-ray upper limit at twice the model; Gaussian noise of those errors when noise_seed is set."""
    from naima.models import ExponentialCutoffPowerLaw, InverseCompton, Synchrotron
    el = ExponentialCutoffPowerLaw(10 ** TRUTH["log10_amplitude"] / u.eV, 1 * u.TeV, TRUTH["alpha"],
                                   10 ** TRUTH["log10_e_cutoff_TeV"] * u.TeV)
    kw = dict(Eemin=1 * u.GeV, Eemax=3 * u.PeV)
    syn, ic = Synchrotron(el, B=10 ** TRUTH["log10_B_uG"] * u.uG, **kw), InverseCompton(el, seed_photon_fields=["CMB"], **kw)
    E = np.r_[(np.array([1.4, 4.8, 23.0]) * u.GHz).to_value(u.eV, u.spectral()), 1e3, 3e3, 8e3,
              np.logspace(9, 12.5, 5), 1e13] * u.eV
    F = (syn.sed(E, distance=D_LMC) + ic.sed(E, distance=D_LMC)).to(FLUX)
    rng = np.random.default_rng(noise_seed)
    pts = []
    for i, (e, f) in enumerate(zip(E, F)):
        band = "radio" if e.value < 1 else "X-ray" if e.value < 1e6 else "gamma-ray"
        if i == len(E) - 1:
            pts.append(S.sed_point(e, 2 * f, band=band, instrument="synthetic", ul=True, ul_cl=0.95, archive="user", stand_in=False))
            continue
        obs = f * (1 + rel_err * rng.standard_normal()) if noise_seed is not None else f
        pts.append(S.sed_point(e, obs, rel_err * f, rel_err * f, band=band, instrument="synthetic", archive="user", stand_in=False))
    return S.combine_sed(*pts, target="synthetic PWN")


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    "sed_products on the noise-free synthetic SED: the default short MCMC (8 walkers, 10 + 30 steps), seed 1."
    return S.sed_products(synthetic_sed(), tmp_path_factory.mktemp("sed"), seed=1)


def test_fit_recovers_chosen_parameters(products):
    """Noise-free points: the maximum likelihood must be the chosen vector, and each chosen value must lie inside the
    fit's own 16-84% interval widened by its half-width on each side (~2 sigma; the short chain's percentiles are rough).
    Not circular: the data come from naima called here with TRUTH; the fit only sees the table."""
    fit = products["fit"]
    np.testing.assert_allclose(fit.ml, list(TRUTH.values()), atol=0.01)
    truth = dict(alpha=TRUTH["alpha"], e_cutoff=10 ** TRUTH["log10_e_cutoff_TeV"], B=10 ** TRUTH["log10_B_uG"],
                 amplitude=10 ** TRUTH["log10_amplitude"])
    for name, value in truth.items():
        lo, hi = fit.interval(name)
        half = (hi - lo) / 2
        assert hi > lo and lo - half <= value <= hi + half, (name, value, lo, hi)
    # W_e of the chosen electrons (naima's own integral) inside the same widened interval
    from naima.models import ExponentialCutoffPowerLaw, Synchrotron
    el = ExponentialCutoffPowerLaw(truth["amplitude"] / u.eV, 1 * u.TeV, truth["alpha"], truth["e_cutoff"] * u.TeV)
    we = Synchrotron(el, B=truth["B"] * u.uG, Eemin=1 * u.GeV, Eemax=3 * u.PeV).compute_We(Eemin=1 * u.GeV).to_value(u.erg)
    lo, hi = fit.interval("W_e")
    assert lo - (hi - lo) / 2 <= we <= hi + (hi - lo) / 2
    assert fit.settings["n_samples"] == 240 and fit.settings["seed"] == 1 and fit.settings["laplace_ok"]


def test_fit_with_noise_lands_within_its_errors():
    """Noisy points (seed 3): the maximum likelihood is within 3 of the fit's own Laplace (Hessian) sigmas of TRUTH."""
    fit = S.fit_pwn(synthetic_sed(noise_seed=3), nwalkers=8, nburn=0, nrun=3, seed=0, n_we=10)
    sig = fit.settings["laplace_sigma"]
    assert sig is not None
    for i, (name, value) in enumerate(TRUTH.items()):
        assert abs(fit.ml[i] - value) <= 3 * sig[name], (name, fit.ml[i], value, sig[name])


def test_products_files_and_titles(products, tmp_path):
    files = products["files"]
    assert set(files) == {"ecsv", "parameters", "figure"} and files["figure"].stat().st_size > 10_000
    par = Table.read(files["parameters"], format="ascii.ecsv")
    assert list(par["parameter"]) == ["alpha", "e_cutoff", "B", "amplitude", "W_e"]
    assert list(par["unit"]) == ["dimensionless", "TeV", "uG", "1/eV", "erg"] and par.meta["stand_in"] is False
    assert "CMB only" in par.meta["seed_photons"] and par.meta["distance_kpc"] == S.LMC_DISTANCE_KPC
    assert par.meta["xray_from"] == "synchrotron" and par.meta["xray_synchrotron_fraction_ml"][0] > 0.99
    fit = products["fit"]
    assert "STAND-IN" not in S.plot_sed_fit(fit, n_band=0).axes[0].get_title()
    stand_in_sed = synthetic_sed()
    stand_in_sed["stand_in"][:] = True
    stand_in_sed.meta["label"] = "STAND-IN inputs (not synthetic PWN): 12 of 12 points"
    f = S.PwnFit(stand_in_sed, fit.parameters, fit.ml, fit.chain, fit.log_prob, fit.settings)
    assert "STAND-IN inputs" in S.plot_sed_fit(f, n_band=0).axes[0].get_title()


def test_fit_refuses_too_few_detections():
    t = S.sed_point(1 * u.keV, 1e-12 * FLUX, 1e-13 * FLUX, band="X-ray", instrument="x", archive="user", stand_in=False)
    with pytest.raises(BadParameterError, match="detected"):
        S.fit_pwn(S.combine_sed(t, target="t"))


# ---------------------------------------------------------------- X-rays from synchrotron

P_IC = [40.4, 2.2, np.log10(0.25), np.log10(0.7)]   # electrons cut off at 0.25 TeV in 0.7 uG: IC runs from keV to GeV


def _naima_syn_ic(p, energy):
    "(synchrotron, IC) nuF_nu in erg/cm2/s of parameter vector p, with naima called here."
    from naima.models import ExponentialCutoffPowerLaw, InverseCompton, Synchrotron
    el = ExponentialCutoffPowerLaw(10 ** p[0] / u.eV, 1 * u.TeV, p[1], 10 ** p[2] * u.TeV)
    kw = dict(Eemin=1 * u.GeV, Eemax=3 * u.PeV)
    return (Synchrotron(el, B=10 ** p[3] * u.uG, **kw).sed(energy, distance=D_LMC).to_value(FLUX),
            InverseCompton(el, seed_photon_fields=["CMB"], **kw).sed(energy, distance=D_LMC).to_value(FLUX))


def ic_xray_sed():
    "A 2 keV X-ray point and two GeV points (10% errors) that inverse Compton of P_IC makes on its own."
    E = [2e3, 1.7e10, 4.9e10] * u.eV
    syn, ic = _naima_syn_ic(P_IC, E)
    assert ic[0] > 1e6 * syn[0]
    return S.combine_sed(*[S.sed_point(e, f * FLUX, 0.1 * f * FLUX, 0.1 * f * FLUX, band=b, instrument="synthetic",
                                       archive="user", stand_in=False)
                           for e, f, b in zip(E, syn + ic, ["X-ray", "gamma-ray", "gamma-ray"])], target="IC X-rays")


def test_xray_detection_is_synchrotron_by_default():
    """Started at the IC solution, the default fit leaves it: at the X-ray energy IC is below synchrotron and below the
    point's error, synchrotron meets the point within 1.5 sigma, in the maximum and in every MCMC sample; the parameter
    table and the figure say so."""
    sed = ic_xray_sed()
    fit = S.fit_pwn(sed, p0=P_IC, nwalkers=8, nburn=0, nrun=3, n_we=10)
    f_x, err_x = sed["flux"][0], sed["flux_error_lo"][0]
    (syn,), (ic,) = _naima_syn_ic(fit.ml, [2e3] * u.eV)
    assert syn > ic and ic < err_x and abs(syn - f_x) <= 1.5 * err_x, (syn, ic, f_x)
    for p in np.unique(fit.chain, axis=0):
        (s,), (c,) = _naima_syn_ic(p, [2e3] * u.eV)
        assert s > c and c < err_x, p
    assert fit.parameters.meta["xray_from"] == "synchrotron"
    assert fit.parameters.meta["xray_constraint"] == S.XRAY_FROM["synchrotron"]
    assert fit.settings["xray_energies_eV"] == pytest.approx([2e3]) and fit.settings["seconds"] > 0
    assert "X-rays: synchrotron (IC < it" in S.plot_sed_fit(fit, n_band=0).axes[0].texts[0].get_text()


def test_xray_from_values():
    sed = ic_xray_sed()
    with pytest.raises(BadParameterError, match="'synchrotron'.*'any'"):
        S.fit_pwn(sed, xray_from="inverse Compton")
    gamma_only = S.fit_pwn(sed[sed["band"] != "X-ray"], p0=P_IC, nwalkers=8, nburn=0, nrun=1, n_we=2)
    assert gamma_only.settings["xray_constraint"].startswith("none: the SED has no X-ray detection")
    assert "no X-ray detection" in S.plot_sed_fit(gamma_only, n_band=0).axes[0].texts[0].get_text()
