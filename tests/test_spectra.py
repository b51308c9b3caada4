"""Joint X-ray spectral fitting on real Swift-XRT responses (mwnb.spectra, Sherpa + XSPEC model library)."""
import time
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
    # measured values (58 counts): a soft, mildly absorbed power law
    assert v(t, "powerlaw.PhoIndex") == pytest.approx(3.397, abs=0.01)
    assert v(t, "tbabs.nH") == pytest.approx(0.216, abs=0.005)
    assert v(t, "stat") == pytest.approx(185.76, abs=0.05)
    assert 1e-14 < v(t, "flux") < 1e-12


@pytest.fixture(scope="module")
def tpyx_spectra(tmp_path_factory):
    return simulate_tpyx_spectra(tmp_path_factory.mktemp("tpyx"), obsids=selected_obsids(), seed=TPYX_SEED)


def test_tpyx_joint_fit_recovers_published_values(tpyx_spectra):
    "8 Poisson spectra from the published T Pyx fit: nH and every temperature inside its 90% interval; < 30 s."
    assert all(fits.getheader(p, 1)["MWNBDEMO"].startswith("simulated") for p in tpyx_spectra)
    t0 = time.perf_counter()
    t = fit_spectra(tpyx_spectra, "tbabs*(bbody+bremss)", tie=["nH"], engine="sherpa",
                    start={"bbody.kT": 0.1, "bremss.kT": 3.0})
    seconds = time.perf_counter() - t0
    assert len(t) == 8 and seconds < 30
    # nH is tied: one value for all rows, and it brackets the published 0.1364e22
    assert len(set(np.asarray(t["tbabs.nH"]))) == 1
    assert v(t, "tbabs.nH_lo") < TPYX_PUBLISHED["tbabs.nH"] < v(t, "tbabs.nH_hi")
    assert v(t, "tbabs.nH") == pytest.approx(0.1273, abs=0.001)
    assert v(t, "tbabs.nH_hi") - v(t, "tbabs.nH") == pytest.approx(0.0128, abs=0.002)
    for c in ("bbody.kT", "bremss.kT"):
        lo, hi = np.asarray(t[c + "_lo"]), np.asarray(t[c + "_hi"])
        assert (lo < TPYX_PUBLISHED[c]).all() and (TPYX_PUBLISHED[c] < hi).all(), c
    # error-weighted mean temperatures across the 8 observations
    for c, truth, tol in (("bbody.kT", 0.0469, 0.001), ("bremss.kT", 1.434, 0.15)):
        val, sig = np.asarray(t[c]), (np.asarray(t[c + "_hi"]) - np.asarray(t[c + "_lo"])) / 2
        mean = np.sum(val / sig**2) / np.sum(1 / sig**2)
        assert mean == pytest.approx(truth, abs=tol), (c, mean)
    # 5360-channel-equivalent: grouped bins minus 1 + 8*4 free parameters
    assert t["dof"][0] == 802
    assert v(t, "stat") == pytest.approx(743.40, abs=0.05)


def test_fit_spectra_cli_writes_table_and_plot(tpyx_spectra, tmp_path, capsys):
    "`mwnb fit-spectra` through the lead's dispatcher: ECSV + PNG written, values printed, engine named."
    from mwnb.cli import main
    out = tmp_path / "fit"
    rc = main(["fit-spectra", *map(str, tpyx_spectra[:2]), "--model", "tbabs*(bbody+bremss)", "--tie", "nH",
               "--band", "0.3-7", "--engine", "sherpa", "--start", "bbody.kT=0.1", "bremss.kT=3", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "engine: sherpa" in text and "tbabs.nH=" in text
    t = Table.read(out / "spectral_fit.ecsv")
    assert len(t) == 2 and t.meta["engine"] == "sherpa" and str(t["bbody.kT"].unit) == "keV"
    assert (out / "spectral_fit_spectra.png").stat().st_size > 20_000


def test_fit_benchmark_cli_prints_seconds(capsys):
    from mwnb.cli import main
    assert main(["fit-benchmark"]) == 0
    text = capsys.readouterr().out
    seconds = float(text.split("spectra (sherpa): ")[1].split(" s")[0])
    assert 0 < seconds < 30


def test_engine_and_input_errors(tmp_path):
    import importlib.util
    if importlib.util.find_spec("xspec") is None:
        with pytest.raises(EngineUnavailableError, match="PyXspec"): pick_engine("xspec")
        assert pick_engine("auto") == "sherpa"
    with pytest.raises(MissingInputError): load_spectrum(tmp_path / "nothing.pha")
    with pytest.raises(MissingInputError, match="no RMF"): load_spectrum(PHA)


def test_profile_confidence_intervals_agree_with_curvature():
    "errors='conf' (Sherpa's profile) on the real spectrum: asymmetric bounds around the same best fit as 'covar'."
    kw = dict(model="tbabs*powerlaw", engine="sherpa", start={"PhoIndex": 2.0})
    cv = fit_spectra([load_spectrum(PHA, ARF, RMF)], errors="covar", **kw)
    pf = fit_spectra([load_spectrum(PHA, ARF, RMF)], errors="conf", **kw)
    c = "powerlaw.PhoIndex"
    assert v(pf, c) == pytest.approx(v(cv, c), rel=1e-6)
    lo, hi = v(pf, c) - v(pf, c + "_lo"), v(pf, c + "_hi") - v(pf, c)
    assert lo == pytest.approx(0.8706, abs=0.01) and hi == pytest.approx(1.1076, abs=0.01)   # measured
    assert lo / (v(cv, c) - v(cv, c + "_lo")) == pytest.approx(1.0, abs=0.3)                  # same scale as covar
