"""Issue 4: catalog loaders from files and from the (local) archives, complete and with units."""
import numpy as np
import pytest
import astropy.units as u
from astropy.table import Table

from mwnb.catalogs import (read_csc, read_fermi, csc_sources, chandra_observations, fermi_4fgl, gaia_cone,
                           twomass_cone, log10_flux, positive_flux)
from mwnb.errors import NonPositiveFluxError, TruncatedResultError
from mwnb.config import data_dir

DATA = data_dir()
FGL = DATA / "pypi-fermipy-4fgl-dr4/gll_psc_v35.fit"
CSC = DATA / "ivoa-dm-usecases-csc2/ivoa_csc2_example.xml"


def test_csc_from_tap_is_complete_with_units(archive):
    t = csc_sources()
    assert len(t) == 326 and t.meta["n_dropped_flux"] == 0
    assert t["ra"].unit == u.deg and t["flux_b"].unit == u.erg / u.s / u.cm**2
    # same sources and positions as the file they were served from
    f = read_csc(CSC)
    assert set(t["name"]) == set(f["name"])
    i = np.argsort(np.asarray(t["name"])); j = np.argsort(np.asarray(f["name"]))
    assert np.max(np.abs(np.asarray(t["ra"])[i] - np.asarray(f["ra"])[j])) < 1e-9


def test_csc_over_server_limit_raises_or_pages(archive):
    engine = archive.engines["heasarc"]
    old, engine.max_rows = engine.max_rows, 100
    try:
        with pytest.raises(TruncatedResultError):
            csc_sources()
        t = csc_sources(page_by="dec")
        assert len(t) == 326 and len(set(t["name"])) == 326
    finally:
        engine.max_rows = old


def test_fermi_from_tap_equals_file(archive):
    tap, fil = fermi_4fgl(), fermi_4fgl(FGL)
    assert len(tap) == len(fil) == 7195
    assert list(tap["name"][:5]) == list(fil["name"][:5])
    ok = np.isfinite(np.asarray(fil["semi_major_95"]))
    assert np.allclose(np.asarray(tap["semi_major_95"])[ok], np.asarray(fil["semi_major_95"])[ok], rtol=1e-6)
    assert (tap["class1"] == fil["class1"]).all()


def test_chandra_observations(archive):
    obs = chandra_observations()
    assert len(obs) == 187 and obs["exposure"].unit == u.s
    assert 7074 in set(obs["obsid"]) and (np.abs(obs["b"]) <= 90).all()


def test_gaia_and_2mass_cones(archive):
    g = gaia_cone(280.0, -60.0, 0.01)
    assert 6636090334814214528 in set(g["source_id"]) and "phot_variable_flag" in g.colnames
    tm = twomass_cone(10.684737, 41.269035, 1 / 3600)
    assert list(tm["designation"]) == ["00424433+4116085"]


def test_nonpositive_flux_is_filtered_and_counted():
    t = Table({"flux": [1e-14, 0.0, -2e-15, np.nan, 3e-13]})
    kept = positive_flux(t, "flux")
    assert len(kept) == 2 and kept.meta["n_dropped_flux"] == 3
    with pytest.raises(NonPositiveFluxError):
        log10_flux(t["flux"])
    assert np.allclose(log10_flux(kept["flux"]), np.log10([1e-14, 3e-13]))
