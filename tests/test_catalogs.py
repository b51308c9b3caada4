"""Catalog loaders from files and from the (local) archives: complete whole-table reads, units, chanmaster rows without
position, extended 4FGL sources, demo tables with contract columns only, blank and sexagesimal positions."""
import numpy as np
import pytest
import astropy.units as u
from astropy.table import QTable, Table

from mwnb.catalogs import (read_csc, read_fermi, csc_sources, chandra_observations, fermi_4fgl, gaia_cone,
                           twomass_cone, log10_flux, positive_flux)
from mwnb import catalogs
from mwnb.errors import NonPositiveFluxError, TruncatedResultError
from mwnb.config import data_dir

DATA = data_dir()
FGL = DATA / "pypi-fermipy-4fgl-dr4/gll_psc_v35.fit"
CSC = DATA / "ivoa-dm-usecases-csc2/ivoa_csc2_example.xml"
EXT14 = DATA / "fermipy-4fgl/LAT_extended_sources_14years.fits"
HALF = DATA / "heasarc-tutorials-cfg2-half/csc_near_4fgl_l0-180.ecsv"


def test_csc_from_tap_is_complete_with_units(archive):
    """The demo csc serves the 5,462 real sources of the published plane half and the 326 of the CSC2 example."""
    from astropy.table import vstack
    t = csc_sources()
    half = Table.read(HALF)
    assert half.meta["published_pairs_in_this_half"] == 5468 and len(half) == 5462
    assert len(t) == 5462 + 326 and t.meta["n_dropped_flux"] == 0
    assert t["ra"].unit == u.deg and t["flux_b"].unit == u.erg / u.s / u.cm**2
    assert t.meta["MWNBDEMO"].startswith("MWNBDEMO: real CSC 2 sources from two files")   # the label travels with the rows
    # same sources, positions and fluxes as the two files they were served from
    f = vstack([read_csc(HALF), read_csc(CSC)])
    assert set(t["name"]) == set(f["name"])
    i = np.argsort(np.asarray(t["name"])); j = np.argsort(np.asarray(f["name"]))
    assert np.max(np.abs(np.asarray(t["ra"])[i] - np.asarray(f["ra"])[j])) < 1e-9
    assert np.array_equal(np.asarray(t["flux_b"])[i], np.asarray(f["flux_b"])[j])


def test_csc_over_server_limit_raises_or_pages(archive):
    engine = archive.engines["heasarc"]
    old, engine.max_rows = engine.max_rows, 2000     # below the 5788 rows of the demo csc
    try:
        with pytest.raises(TruncatedResultError):
            csc_sources()
        t = csc_sources(page_by="dec")
        assert len(t) == 5788 and len(set(t["name"])) == 5788
    finally:
        engine.max_rows = old


def test_fermi_from_tap_equals_file(archive):
    # fermilpsc names the extended sources but has no size for them: the extension comes from the FSSC table
    tap, fil = fermi_4fgl(extended=EXT14), fermi_4fgl(FGL)
    assert len(tap) == len(fil) == 7195
    assert tap.meta["n_extended_region"] == fil.meta["n_extended_region"] == 82
    assert list(tap["name"][:5]) == list(fil["name"][:5])
    ok = np.isfinite(np.asarray(fil["semi_major_95"]))
    assert np.allclose(np.asarray(tap["semi_major_95"])[ok], np.asarray(fil["semi_major_95"])[ok], rtol=1e-6)
    assert (tap["class1"] == fil["class1"]).all()


def test_chandra_observations(archive):
    obs = chandra_observations()
    assert len(obs) == 187 and obs["exposure"].unit == u.s
    assert 7074 in set(obs["obsid"]) and (np.abs(obs["b"]) <= 90).all()


def test_chanmaster_rows_without_position_are_filtered_not_fatal(archive):
    """Real chanmaster has rows with NULL ra/dec; the query leaves them out."""
    from mwnb.archive import tap_query
    null = tap_query("heasarc", "SELECT obsid, ra, dec FROM chanmaster WHERE ra IS NULL OR dec IS NULL")
    assert list(null["obsid"]) == [-1]                     # the demo serves one, as the contract says the real one does
    assert len(tap_query("heasarc", "SELECT obsid FROM chanmaster")) == 188
    obs = chandra_observations()                           # before the fix: BadCoordinatesError on that row
    assert len(obs) == 187 and -1 not in set(obs["obsid"]) and np.isfinite(np.asarray(obs["ra"])).all()


def test_demo_chanmaster_provenance_is_in_meta_not_a_column():
    """Demo tables carry only contract columns; the synthesised exposure is said in meta."""
    from mwnb.demo.crossmatch import chanmaster_table, fermilpsc_table, csc_table, DEMO_NOTE
    from mwnb.contracts import contract_columns
    cm = chanmaster_table(DATA)
    assert "demo_note" not in cm.colnames and cm.meta["MWNBDEMO"] == DEMO_NOTE and "exposure synthesised" in DEMO_NOTE
    for table, t in (("chanmaster", cm), ("fermilpsc", fermilpsc_table(DATA)), ("csc", csc_table(DATA))):
        assert set(t.colnames) <= {c["name"] for c in contract_columns("heasarc", table)}, table


def test_fermilpsc_extended_sources_over_tap(archive, caplog):
    """Over TAP the 82 extended sources are named (extended_source_name), never dropped silently."""
    import logging
    with caplog.at_level(logging.WARNING, logger="mwnb.catalogs"):
        tap = fermi_4fgl()
    assert (tap.meta["n_extended"], tap.meta["n_extended_region"], tap.meta["n_no_ellipse"]) == (82, 0, 90)
    assert "82 extended 4FGL sources have no region" in caplog.text
    with_ext = fermi_4fgl(extended=EXT14)
    assert (with_ext.meta["n_extended_region"], with_ext.meta["n_no_ellipse"]) == (82, 8)
    w28 = with_ext[with_ext["extended_name"] == "W 28"][0]
    assert w28["name"] == "4FGL J1801.3-2326e" and abs(w28["semi_major_95"] - 0.39) < 1e-6 and w28["region_source"] == "extension"


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


def test_4fgl_classes_kept_as_published(archive):
    """CLASS1 keeps 4FGL's identified (capitals) vs associated (lower case) distinction; class_group folds it."""
    from mwnb.catalogs import class_group
    raw = Table.read(FGL, hdu=1)
    published = np.char.strip(np.asarray(raw["CLASS1"]).astype(str))
    for t in (read_fermi(FGL), fermi_4fgl(extended=EXT14)):        # the FSSC file and HEASARC fermilpsc over TAP
        assert list(t["class1"]) == list(published)               # before: lower-cased, blank -> 'unassociated'
    cls = list(published)
    assert (cls.count("PSR"), cls.count("psr"), cls.count("")) == (137, 4, 2423)
    folded = class_group(published)
    assert (folded == "psr").sum() == 141 and (folded == "unassociated").sum() == 2423


def test_flux_summary_of_the_served_csc(archive):
    """The seed's min/max/mean check of a whole-catalog answer, on the served csc: the extremes are the files' own."""
    from mwnb.catalogs import flux_summary
    s = flux_summary(csc_sources())
    half = np.asarray(Table.read(HALF)["b_flux_ap"], float)
    example = np.asarray(read_csc(CSC)["flux_b"], float)
    both = np.r_[half, example]
    assert s["n"] == 5788 and s["n_missing"] == 0
    assert (s["min"], s["max"]) == (both.min(), both.max()) == (half.min(), half.max())
    assert abs(s["mean"] - both.mean()) < 1e-12 * both.mean()


def test_whole_catalog_reads_are_counted_and_complete_against_random_subsets(archive):
    "HEASARC answers a query without TOP with a random capped subset (status OK): every whole read still comes back whole."
    import pyvo
    from mwnb.archive import tap_query
    from mwnb.config import conf
    from mwnb.demo.tap import NO_TOP_CAP
    svc = pyvo.dal.TAPService(conf.heasarc_tap)
    assert len(svc.run_sync("SELECT name FROM csc")) == NO_TOP_CAP   # what a read without TOP gets
    n_csc = int(tap_query("heasarc", "SELECT COUNT(*) AS n FROM csc")["n"][0])
    n_obs = int(tap_query("heasarc", "SELECT COUNT(*) AS n FROM chanmaster WHERE ra IS NOT NULL AND dec IS NOT NULL")["n"][0])
    assert n_csc == 5788 and n_obs == 187
    for _ in range(2):   # a different random subset each call must never show
        t = csc_sources(min_flux=None)
        assert len(t) == n_csc == len(set(t["name"])) and t.meta["n_counted"] == n_csc
    assert len(csc_sources(min_flux=None, page_by="dec")) == n_csc
    assert len(chandra_observations()) == n_obs
    assert len(fermi_4fgl()) == 7195
    reads = [r["params"]["QUERY"] for r in archive.requests_to("/heasarc/tap/sync")]
    assert f"SELECT TOP {n_csc + 1} name, ra, dec, lii, bii, b_flux_ap FROM csc" in reads


def test_blank_positions_are_refused_or_dropped_never_zero(tmp_path):
    from mwnb.errors import BadInputFileError
    path = tmp_path / "blank.csv"
    path.write_text("name,ra,dec,flux\nA,,,1e-13\nB,10.0,-5.0,2e-13\n")
    with pytest.raises(BadInputFileError, match="blank ra/dec .*A"):
        read_csc(path)
    kept = read_csc(path, blank_positions="drop")
    assert list(kept["name"]) == ["B"] and kept.meta["n_dropped_blank_position"] == 1


def test_sexagesimal_positions_parse_or_fail_typed(tmp_path):
    from mwnb.errors import BadInputFileError
    good = tmp_path / "sexa.csv"
    good.write_text("name,ra,dec\nA,12h30m00s,-05d30m00s\nB,12:30:00,+10:00:00\n")
    t = read_csc(good)
    assert np.allclose(np.asarray(t["ra"]), [187.5, 187.5]) and np.allclose(np.asarray(t["dec"]), [-5.5, 10.0])
    bad = tmp_path / "bad.csv"
    bad.write_text("name,ra,dec\nA,12h3xm,1\n")
    with pytest.raises(BadInputFileError, match="neither numbers nor sexagesimal"):
        read_csc(bad)


# ---- MAST observations and sources, the CSC command-line service ----

def test_mast_observations_near_field(local_archive):
    from mwnb.archive import tap_query
    obs = tap_query("mast", "SELECT obs_collection, s_ra, s_dec FROM ivoa.obscore")
    assert len(obs) > 0
    r = obs[0]
    hit = catalogs.mast_observations(float(r["s_ra"]), float(r["s_dec"]) + 0.01, radius_deg=0.05,
                                    collections=(str(r["obs_collection"]),))
    assert len(hit) >= 1 and np.all(hit["obs_collection"] == r["obs_collection"])
    none = catalogs.mast_observations(float(r["s_ra"]), float(r["s_dec"]) + 1.0, radius_deg=0.05,
                                     collections=(str(r["obs_collection"]),))
    assert len(none) == 0 and "no " in none.meta["note"]


def test_galex_hsc_and_csc_are_live_only(monkeypatch):
    from mwnb.errors import ServiceQueryError
    monkeypatch.setenv("MWNB_ARCHIVE", "local")
    with pytest.raises(ServiceQueryError, match="MAST's catalog service .* is not emulated"):
        catalogs.mast_source_counterparts(QTable({"id": [1], "ra": [149.0] * u.deg, "dec": [69.7] * u.deg,
                                                   "pos_err_95": [1.0] * u.arcsec}), "GALEX")
    with pytest.raises(ServiceQueryError, match="MWNB_ARCHIVE=live"):
        catalogs.csc_obsid_sources(1990)


@pytest.mark.remote_data
def test_live_galex_and_hsc_counterparts(monkeypatch):
    monkeypatch.setenv("MWNB_ARCHIVE", "live")
    src = QTable({"id": [1], "ra": [322.49324] * u.deg, "dec": [12.16683] * u.deg, "pos_err_95": [3.0] * u.arcsec})
    hsc = catalogs.mast_source_counterparts(src, "HSC")           # M15 core (astroquery's own HSC test position)
    assert len(hsc) > 0 and np.all(hsc["sep"] <= 3.0)
    src = QTable({"id": [1], "ra": [158.47924] * u.deg, "dec": [-7.30962] * u.deg, "pos_err_95": [30.0] * u.arcsec})
    galex = catalogs.mast_source_counterparts(src, "GALEX")
    assert np.all(galex["sep"] <= 30.0) and "note" in galex.meta or len(galex) > 0
