"""The local demo archive: its services behave as the contracts say, seen through the real clients (pyvo, astroquery);
it fails at once, with the root cause, when its real data files are missing; one list of services for library and demo."""
import numpy as np
import pytest
from astropy.table import Table


def test_one_list_of_tap_services_for_the_library_and_the_demo():
    from mwnb.archive import SERVICES
    from mwnb.demo import archive as demo
    assert demo.TAP_SERVICES is SERVICES


def test_missing_data_fails_at_once_with_the_root_cause(tmp_path, monkeypatch):
    from mwnb.demo import archive as demo
    from mwnb.errors import MissingInputError
    monkeypatch.setenv("MWNB_DATA_DIR", str(tmp_path))   # an empty folder
    monkeypatch.setattr(demo, "_ACTIVE", None)
    with pytest.raises(MissingInputError, match="MANIFEST.csv"):
        demo.use_archive("local")
    assert demo._ACTIVE is None


def test_astroquery_heasarc_without_top_gets_a_random_subset(archive):
    from astroquery.heasarc import HeasarcClass
    from mwnb.demo.tap import NO_TOP_CAP
    heasarc = HeasarcClass()
    heasarc.VO_URL = f"{archive.url}/heasarc"
    a = heasarc.query_tap("SELECT name FROM csc").to_table()
    b = heasarc.query_tap("SELECT name FROM csc").to_table()
    assert len(a) == len(b) == NO_TOP_CAP and set(a["name"]) != set(b["name"])
    whole = heasarc.query_tap("SELECT TOP 6000 name FROM csc").to_table()
    assert len(whole) == 5788


def test_astroquery_irsa_join_is_refused_and_the_cone_works(archive):
    import pyvo
    from astroquery.ipac.irsa import IrsaClass
    irsa = IrsaClass()
    irsa.tap_url = f"{archive.url}/irsa/tap"
    with pytest.raises(pyvo.dal.DALQueryError, match="JOIN"):
        irsa.query_tap("SELECT a.designation FROM fp_psc AS a JOIN fp_psc AS b ON a.designation = b.designation").to_table()
    one = irsa.query_tap("SELECT TOP 1 designation, ra, dec FROM fp_psc").to_table()
    ra, dec = float(one["ra"][0]), float(one["dec"][0])
    cone = irsa.query_tap(f"SELECT TOP 1 designation, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra}, {dec})) AS dist "
                          f"FROM fp_psc WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.01)) = 1 "
                          f"ORDER BY dist").to_table()
    assert cone["designation"][0] == one["designation"][0]


def test_a_friendly_server_for_a_test_that_needs_one():
    from mwnb.demo.archive import LocalArchive
    from mwnb.archive import tap_query
    import pyvo
    with LocalArchive(populate=False, behaviours={"heasarc": {"no_top_random_subset": False}}) as la:
        la.add_table("cat", Table({"id": np.arange(1500)}))
        from mwnb.config import conf
        assert len(pyvo.dal.TAPService(conf.heasarc_tap).run_sync("SELECT id FROM cat")) == 1500
        assert len(tap_query("heasarc", "SELECT id FROM cat")) == 1500


def test_a_tutorial_loads_only_the_demo_content_it_names():
    from mwnb.demo.archive import LocalArchive
    with LocalArchive(content=("wmap",)) as la:
        assert la.loaded == {"wmap"}
        assert "/fermi" not in la.routes and "csc" not in la.engines["heasarc"].tables
        la.populate(("wmap", "fermi"))   # a later need loads the rest, once
        assert la.loaded == {"wmap", "fermi"} and "/fermi" in la.routes
