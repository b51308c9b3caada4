"""Chandra: files through the local S3 and the registry/SIA/DataLink, counterparts via local TAP with chance rates, the
merged table and Src 2, the PWN spectrum and its fit. (Images and detection: test_xray_images.py.)"""
import numpy as np
import pytest
import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from mwnb import catalogs, chandra
from mwnb.sed import sed_xray_flux
from test_xray_images import m82_sources  # noqa: F401 (a fixture: the M82 detections with 95% errors, one fixture for both files)


@pytest.fixture(scope="module")
def demo_uris(local_archive):
    from mwnb.demo.fermi import chandra_demo_uris
    return chandra_demo_uris()


def test_demo_files_are_labelled_stand_ins(demo_uris):
    from mwnb.cloud import open_fits
    with open_fits(demo_uris["events"]) as h:
        assert h["EVENTS"].header["MWNBDEMO"] is True and h["EVENTS"].header["OBJECT"] == "M82"


def test_counterparts_match_gaia_and_2mass_rows(local_archive):
    from mwnb.archive import tap_query
    gaia = tap_query("gaia", "SELECT TOP 3 source_id, ra, dec FROM gaiadr3.gaia_source")
    tm = tap_query("irsa", "SELECT TOP 2 designation, ra, dec FROM fp_psc")
    # X-ray "sources" 0.5 arcsec off three Gaia stars and two 2MASS stars, plus one far from both
    ra = np.r_[np.asarray(gaia["ra"]), np.asarray(tm["ra"]), 150.0]
    dec = np.r_[np.asarray(gaia["dec"]), np.asarray(tm["dec"]), 2.0] + 0.5 / 3600
    src = QTable({"id": np.arange(1, 7), "ra": ra * u.deg, "dec": dec * u.deg})
    cps = chandra.find_counterparts(src, radius=1 * u.arcsec)
    g, t = cps["Gaia DR3"], cps["2MASS"]
    assert set(np.asarray(g["source_id"])) >= set(np.asarray(gaia["source_id"]))
    assert set(np.asarray(g["xray_id"])) <= {1, 2, 3}
    assert np.all(g["sep"] < 1 * u.arcsec) and g["sep"].unit == u.arcsec
    assert set(np.asarray(t["designation"])) >= set(np.asarray(tm["designation"]))
    assert 6 not in set(np.asarray(g["xray_id"])) | set(np.asarray(t["xray_id"]))


def test_no_counterparts_is_an_empty_table_with_a_note(local_archive):
    src = QTable({"id": [1], "ra": [150.0] * u.deg, "dec": [2.0] * u.deg})
    cps = chandra.find_counterparts(src, radius=1 * u.arcsec)
    for name, t in cps.items():
        assert len(t) == 0 and "no " in t.meta["note"]
        assert "xray_id" in t.colnames


def test_obsid_files_found_by_listing_the_bucket(local_archive):
    from mwnb.errors import EmptyResultError
    files = chandra.chandra_obsid_files(1990)
    assert files["events"].endswith("/0/1990/primary/acisf01990N004_evt2.fits")
    assert files["image"].endswith("_full_img2.fits")
    with pytest.raises(EmptyResultError, match="ObsID 1991"):
        chandra.chandra_obsid_files(1991)


def test_image_found_through_registry_sia_datalink(local_archive):
    uri = chandra.find_chandra_image(73.39, -68.49, 1990)
    assert uri == "s3://nasa-heasarc/chandra/data/byobsid/0/1990/primary/acisf01990N004_full_img2.fits"
    paths = [r["path"] for r in local_archive.requests]
    assert any(p.startswith("/registry/tap") for p in paths) and any(p.startswith("/heasarc/sia") for p in paths)
    assert any(p.startswith("/heasarc/datalink/chanmaster") for p in paths)
    sia = [r for r in local_archive.requests if r["path"].startswith("/heasarc/sia")][-1]
    assert sia["params"]["FORMAT"] == "image/fits"
    from mwnb.errors import EmptyResultError
    with pytest.raises(EmptyResultError, match="ObsID 1991"):
        chandra.find_chandra_image(73.39, -68.49, 1991)


def test_registry_gives_exactly_the_sia_1_service_with_the_heasarc_tutorials_keywords(local_archive):
    "heasarc_sia.yaml discovery: SIA 1.0 only (standard_id = 'ivo://ivoa.net/std/sia'), keywords 'chandra heasarc', fixed order."
    from mwnb.archive import tap_query
    found = tap_query("registry", chandra.chandra_sia_adql())
    # the demo registry lists an SIA 2.0 Chandra service and a non-HEASARC Chandra SIA first: both passed over
    assert list(found["ivoid"]) == ["ivo://nasa.heasarc/chanmaster"]
    assert list(found["standard_id"]) == ["ivo://ivoa.net/std/sia"]
    assert chandra.chandra_sia_url() == f"{local_archive.url}/heasarc/sia?table=chanmaster&"


def test_crab_image_is_the_center_image_of_the_target_through_cloud_access(local_archive):
    "The SIA row is chosen by obs_title/detector/name and the S3 key comes from the DataLink #this cloud_access JSON."
    assert chandra.find_chandra_image(83.63321, 22.01446, target="Crab") == "s3://nasa-heasarc/chandra/data/byobsid/8/1838/primary/demo_image2.fits"
    rows = [dict(obs_title="Center Image", detector="HRC-I", name="CRAB NEBULA", access_url="a"),
            dict(obs_title="Full Field Image", detector="ACIS-S", name="Crab Nebula", access_url="b"),
            dict(obs_title="Center Image", detector="ACIS-S", name="Crab Nebula", access_url="c")]
    assert [r["access_url"] for r in chandra.choose_chandra_image(rows, "Crab Nebula")] == ["c", "a"]


def test_sia_and_datalink_go_through_the_mwnb_session(local_archive, monkeypatch):
    import mwnb.archive
    urls, real = [], mwnb.archive.vo_session
    def recording_session():
        s = real(); request = s.request
        s.request = lambda method, url, **kw: (urls.append(url), request(method, url, **kw))[1]
        return s
    monkeypatch.setattr(mwnb.archive, "vo_session", recording_session)
    chandra.find_chandra_image(73.39, -68.49, 1990)
    assert any("/heasarc/sia" in x for x in urls) and any("/heasarc/datalink" in x for x in urls)


def test_import_is_light():
    import subprocess, sys
    heavy = ["astropy.table", "astropy.units", "astropy.coordinates", "astropy.io.fits", "astropy.wcs", "pyvo",
             "matplotlib", "photutils"]
    r = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        f"import sys, mwnb.chandra; print([m for m in {heavy!r} if m in sys.modules])"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
    cumulative_us = int(next(l for l in r.stderr.splitlines() if l.rstrip().endswith("| mwnb.chandra")).split("|")[1])
    assert cumulative_us < 500_000, cumulative_us                      # ~0.13 s measured: numpy is most of it


# ---- position errors, counterparts with chance rates, merged table, Src 2, spectrum ----


def _gaia_rows():
    from mwnb.archive import tap_query
    return tap_query("gaia", "SELECT source_id, ra, dec FROM gaiadr3.gaia_source WHERE dec < -59.99 AND dec > -60.01")


def test_counterparts_are_matched_within_each_sources_own_radius(local_archive):
    stars = _gaia_rows()                                  # the 5 real Gaia DR3 rows near (280.0, -60.0)
    assert len(stars) == 5
    s0, s1 = SkyCoord(stars["ra"][0] * u.deg, stars["dec"][0] * u.deg), SkyCoord(stars["ra"][1] * u.deg, stars["dec"][1] * u.deg)
    a = s0.directional_offset_by(90 * u.deg, 0.8 * u.arcsec)
    b = s1.directional_offset_by(90 * u.deg, 2.5 * u.arcsec)
    src = QTable({"id": [1, 2, 3], "ra": [a.ra.deg, b.ra.deg, b.ra.deg] * u.deg, "dec": [a.dec.deg, b.dec.deg, b.dec.deg] * u.deg,
                  "pos_err_95": [1.3, 1.3, 3.0] * u.arcsec})
    g = chandra.find_counterparts(src, catalogs=("gaia",))["Gaia DR3"]
    # 1: its star at 0.8" < 1.3"; 2: the star at 2.5" is outside 1.3" (fetched, then cut); 3: the same star inside 3.0"
    assert set(int(i) for i in g["xray_id"]) == {1, 3}
    best = {int(r["xray_id"]): r for r in g[::-1]}
    assert best[1]["source_id"] == stars["source_id"][0] and abs(best[1]["sep"] - 0.8) < 0.01
    assert best[3]["source_id"] == stars["source_id"][1] and abs(best[3]["sep"] - 2.5) < 0.01
    assert np.all(g["sep"] <= g["match_radius"])
    # the demo serves the real rows' ra_error/dec_error: every match radius adds the catalog's own 95% term
    assert g.meta["catalog_error_missing"] == 0
    assert np.all(np.asarray(g["match_radius"], float) > np.asarray([1.3, 3.0]))


def test_chance_rate_is_the_local_catalog_density_times_the_error_circle(local_archive):
    stars = _gaia_rows()
    ra, dec = np.asarray(stars["ra"], float), np.asarray(stars["dec"], float)
    centre = SkyCoord(ra.mean() * u.deg, dec.mean() * u.deg)
    far = SkyCoord(150 * u.deg, 2 * u.deg)
    src = QTable({"id": [7, 8], "ra": [centre.ra.deg, far.ra.deg] * u.deg, "dec": [centre.dec.deg, far.dec.deg] * u.deg,
                  "pos_err_95": [1.5, 1.5] * u.arcsec})
    ch = chandra.chance_coincidence(src, catalogs=("gaia",), ring=60 * u.arcsec)
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(centre).arcsec
    n_ring = int(((sep > 1.5) & (sep <= 61.5)).sum())
    assert n_ring == 5 and list(ch["n_ring"]) == [5, 0]
    area = np.pi * (61.5**2 - 1.5**2) / 3600                             # arcmin2, flat: 1.2e-6 below the spherical area
    assert ch["ring_area"][0].to_value(u.arcmin**2) == pytest.approx(area, rel=1e-5)
    assert ch["n_chance"][0] == pytest.approx(5 / area * np.pi * 1.5**2 / 3600, rel=1e-5)
    assert ch["p_chance"][0] == pytest.approx(1 - np.exp(-ch["n_chance"][0]))
    assert ch["n_chance"][1] == 0


def test_merged_table_on_the_demo_field_says_what_it_found(local_archive, m82_sources):
    src = m82_sources[0]
    cps = chandra.find_counterparts(src)
    ch = chandra.chance_coincidence(src)
    pwn, src2 = chandra.follow_up_source(src)
    m = chandra.merged_table(src, cps, ch, pwn_id=pwn, follow_up_id=src2)
    assert len(m) == len(src) == 19 and list(m["role"][:2]) == ["PWN", "Src 2"] and (m["role"] == "").sum() == 17
    # the M82 stand-in field has no demo Gaia/2MASS rows: no counterpart, density 0, said in words
    assert m["gaia_n"].sum() == 0 and m["tmass_n"].sum() == 0 and np.all(m["gaia_n_chance"] == 0)
    assert all(t.startswith("no ") for t in m.meta["counterparts"].values())
    s = chandra.follow_up_summary(m, src2)
    assert s["gaia_n"] == 0 and "no Gaia DR3 source within the 95% error circle (1.30 arcsec)" in s["note"]


def test_stand_in_spectrum_fit_gives_a_flux_with_its_interval():
    from mwnb.demo.fermi import stand_in_spectrum
    spec = stand_in_spectrum()
    fit = chandra.fit_source_spectrum(spec["pha"], spec["arf"], spec["rmf"], label=spec["label"])
    sed = sed_xray_flux(fit)
    assert sed["label"].startswith("STAND-IN") and (sed["e_min_keV"], sed["e_max_keV"]) == (0.5, 7.0)
    # 53 counts in 0.5-7 keV: Gamma = 3.15 (2.29-4.37), nH = 0.12e22 with its 90% lower bound at the hard limit 0
    assert fit["powerlaw.PhoIndex_status"][0] == "ok" and 2.8 < fit["powerlaw.PhoIndex"][0] < 3.5
    assert fit["powerlaw.PhoIndex_lo"][0] < fit["powerlaw.PhoIndex"][0] < fit["powerlaw.PhoIndex_hi"][0]
    assert 0.05 < fit["tbabs.nH"][0] < 0.3 and fit["tbabs.nH_hi"][0] > fit["tbabs.nH"][0]
    assert fit["tbabs.nH_status"][0] == "ok" or (fit["tbabs.nH_status"][0] == "pegged_low" and fit["tbabs.nH_lo"][0] == 0)
    assert sed["flux_lo"] < sed["flux"] < sed["flux_hi"] and 1e-13 < sed["flux"] < 5e-13
    assert sed["unabsorbed_flux_lo"] < sed["unabsorbed_flux"] < sed["unabsorbed_flux_hi"]


@pytest.mark.remote_data
def test_live_csc_spectra_of_obsid_1990(monkeypatch, tmp_path):
    monkeypatch.setenv("MWNB_ARCHIVE", "live")
    det = catalogs.csc_obsid_sources(1990)
    assert len(det) > 0 and {"obsid", "obi", "region_id"} <= set(det.colnames)
    files = catalogs.fetch_csc_spectra(det[:1], tmp_path)
    assert all(files[0][k].stat().st_size > 0 for k in ("pha", "arf", "rmf"))
    fit = chandra.fit_source_spectrum(files[0]["pha"], files[0]["arf"], files[0]["rmf"])
    assert np.isfinite(sed_xray_flux(fit)["flux"])


def test_pwn_and_src2_are_chosen_by_position_and_the_separations_printed(m82_sources, capsys):
    src = m82_sources[0]
    order = np.argsort(-np.asarray(src["net_counts"], float))
    third = src[order[2]]                                   # a fainter source: brightness must not decide
    near = SkyCoord(third["ra"], third["dec"]).directional_offset_by(30 * u.deg, 1.5 * u.arcsec)
    pwn, src2 = chandra.follow_up_source(src, near, pwn_radius=5.0)
    assert pwn == int(third["id"]) and src2 == int(src["id"][order[0]])
    out = capsys.readouterr().out
    assert "1.50 arcsec from" in out and f"Src 2: X{src2}" in out
    with pytest.raises(chandra.EmptyResultError, match="the nearest is 1.5 arcsec away"):
        chandra.follow_up_source(src, near, pwn_radius=1.0)


def test_csc_spectrum_of_the_pwn_is_the_detection_nearest_it_labelled_as_an_approximation(monkeypatch, tmp_path, capsys):
    from astropy.table import Table
    from astropy.io import fits
    dets = Table({"name": ["2CXO J045330.0-682700", "2CXO J045338.0-682921"], "ra": [73.375, 73.4085], "dec": [-68.45, -68.4891],
                  "obsid": [1990, 1990], "obi": [0, 0], "region_id": [7, 12]})   # the PWN's is the second row, not the first
    fetched = []
    def fake_fetch(rows, out_dir):
        fetched.append(int(rows["region_id"][0]))
        pha = tmp_path / "pha.fits"
        reg = fits.BinTableHDU.from_columns([fits.Column("SHAPE", "16A", array=["ELLIPSE"]), fits.Column("R", "2E", array=[[12.0, 9.0]])], name="REGION")
        fits.HDUList([fits.PrimaryHDU(), reg]).writeto(pha, overwrite=True)
        return [dict(obsid=1990, obi=0, region_id=fetched[-1], pha=pha, arf=tmp_path / "a", rmf=tmp_path / "r")]
    monkeypatch.setattr(chandra, "csc_obsid_sources", lambda obsid: dets)
    monkeypatch.setattr(chandra, "fetch_csc_spectra", fake_fetch)
    monkeypatch.setattr(chandra, "specextract_available", lambda: False)
    s = chandra.pwn_xray_spectrum(SkyCoord(73.408, -68.489, unit="deg"), tmp_path, obsid=1990)
    assert fetched == [12] and s["name"] == "2CXO J045338.0-682921" and s["separation_arcsec"] < 1
    assert s["label"].startswith("APPROXIMATION") and "ELLIPSE with radii [12.0, 9.0] sky pixels" in s["region"]
    assert "arcsec from" in capsys.readouterr().out


def test_galex_and_hsc_counterparts_merge_into_the_source_table(m82_sources):
    from astropy.table import Table
    src = m82_sources[0]
    merged = chandra.merged_table(src, {}, pwn_id=1, follow_up_id=2)
    galex = Table({"xray_id": [2, 2], "id": ["g1", "g2"], "ra": [0.0, 0.0], "dec": [0.0, 0.0], "sep": [0.9, 0.4],
                   "match_radius": [2.0, 2.0], "fuv_mag": [21.0, 20.5], "nuv_mag": [20.0, 19.8]})
    hsc = Table(names=["xray_id", "id", "ra", "dec", "sep", "match_radius"], dtype=[int, str, float, float, float, float])
    hsc.meta["note"] = "none"
    m = catalogs.add_mast_counterparts(merged, {"GALEX": galex, "HSC": hsc})
    row = m[m["id"] == 2][0]
    assert (row["galex_n"], row["galex_id"], row["galex_sep"].value, row["galex_fuv_mag"]) == (2, "g2", 0.4, 20.5)
    assert m["hsc_n"].sum() == 0 and m.meta["counterparts"]["HSC"] == "none" and len(m) == len(src)


def _csc_stand_in_responses():
    "Real CSC per-detection ARF/RMF (ObsID 4938, sherpa's test data) standing in for those of the detection nearest the PWN."
    import sherpa
    from pathlib import Path
    d = Path(sherpa.__file__).parent / "astro/datastack/tests/data"
    return dict(arf=d / "acisf04938_000N002_r0043_arf3.fits", rmf=d / "acisf04938_000N002_r0043_rmf3.fits",
                name="2CXO stand-in detection", separation_arcsec=2.5)


def test_without_ciao_the_pwn_spectrum_is_extracted_from_the_events_with_csc_responses(demo_uris, monkeypatch, tmp_path, capsys):
    from astropy.io import fits
    from mwnb import xray_images
    ev = xray_images.read_events(demo_uris["events"])                # labelled stand-in events (M82)
    asked = []
    def responses(obsid, position, out_dir, radius=10.0):
        asked.append(obsid); return _csc_stand_in_responses()
    monkeypatch.setattr(chandra, "csc_responses", responses)
    monkeypatch.setattr(chandra, "specextract_available", lambda: False)
    centre = SkyCoord(148.9655, 69.6779, unit="deg")                   # M82's X-ray peak
    s = chandra.pwn_xray_spectrum(centre, tmp_path, obsid=1990, events=ev)
    assert asked == [1990] and s["method"].startswith("event-list extraction") and "extracting the PWN region" in capsys.readouterr().out
    assert "point-source ARF for an extended region" in s["label"] and "2CXO stand-in detection (2.5 arcsec from the PWN)" in s["label"]
    assert s["label"].startswith("MWNBDEMO") and 'circle(148.96550,69.67790,40")' in s["region"]
    with fits.open(s["pha"]) as h:
        assert h[1].header["ANCRFILE"] == "acisf04938_000N002_r0043_arf3.fits" and h[0].header["MWNBDEMO"]
        assert any("point-source ARF" in str(x) for x in h[1].header["HISTORY"])
    fit = chandra.fit_source_spectrum(s["pha"], label=s["label"], region=s["region"])   # responses and background from the header
    sed = sed_xray_flux(fit)
    assert sed["flux_lo"] < sed["flux"] < sed["flux_hi"] and sed["region"] == s["region"]
    assert fit["powerlaw.PhoIndex_lo"][0] < fit["powerlaw.PhoIndex"][0] < fit["powerlaw.PhoIndex_hi"][0]
    assert "MWNBDEMO" in fit.meta                                     # the stand-in label reached the fit table


def test_fit_table_of_an_unlabelled_spectrum_carries_no_stand_in_label(monkeypatch):
    import sherpa
    from pathlib import Path
    from mwnb.provenance import archive_kind
    monkeypatch.setenv("MWNB_ARCHIVE", "live")     # as a live run: its products must stay unlabelled (no service is asked)
    assert archive_kind() == "live archive"
    pha = Path(sherpa.__file__).parent / "astro/datastack/tests/data/3c273.pi"   # real ACIS spectrum, ObsID 459
    fit = chandra.fit_source_spectrum(pha, n_draws=50)
    assert "MWNBDEMO" not in fit.meta and np.isfinite(sed_xray_flux(fit)["flux"])


def test_counterpart_and_merged_tables_carry_the_sources_stand_in_label(local_archive, m82_sources):
    src = m82_sources[0]
    labelled = QTable(src, copy=True); labelled.meta["MWNBDEMO"] = "MWNBDEMO: stand-in events"
    plain = QTable(src, copy=True); plain.meta.pop("MWNBDEMO", None)
    cps = chandra.find_counterparts(labelled)
    assert all(t.meta["MWNBDEMO"] for t in cps.values())        # every counterpart table of stand-in sources says so
    assert chandra.merged_table(labelled, {}).meta["MWNBDEMO"] == "MWNBDEMO: stand-in events"
    assert "MWNBDEMO" not in chandra.merged_table(plain, {}).meta     # real sources, no stand-in counterparts: no label
