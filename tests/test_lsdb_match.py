"The LSDB engine: same pairs as the KD-tree engine, counterparts from the local-S3 HATS copy, a scheduler by address, the scaling benchmark."
import numpy as np
import pytest
import astropy.units as u
from astropy.table import Table
from scipy.spatial import cKDTree
from mwnb.config import data_dir
from mwnb.catalogs import read_fermi, read_csc
from mwnb.crossmatch import match_local
from mwnb.sky import unit_vectors
from mwnb.errors import BadParameterError, EngineUnavailableError
from mwnb.lsdb_match import match_lsdb, counterparts_lsdb, find_counterparts_lsdb, scale_benchmark, dask_client

pytest.importorskip("lsdb")
DATA = data_dir()


@pytest.fixture(scope="module")
def fgl():
    return read_fermi(DATA/"pypi-fermipy-4fgl-dr4/gll_psc_v35.fit")


@pytest.fixture(scope="module")
def half():
    return read_csc(DATA/"heasarc-tutorials-cfg2-half/csc_near_4fgl_l0-180.ecsv")


def assert_same_pairs(got, ref):
    assert got.colnames == ref.colnames
    assert len(got) == len(ref) > 0
    for c in ("fermi_index", "source_index", "fermi_name", "source_name"):
        assert np.asarray(got[c]).tolist() == np.asarray(ref[c]).tolist(), c
    assert np.max(np.abs(np.asarray(got["sep"]) - np.asarray(ref["sep"]))) < 1e-9
    e1, e2 = np.asarray(got["ellipse_dist"]), np.asarray(ref["ellipse_dist"])
    assert np.array_equal(np.isnan(e1), np.isnan(e2))
    assert np.allclose(e1[~np.isnan(e1)], e2[~np.isnan(e2)], rtol=0, atol=1e-12)


def test_shared_half_same_pairs_local_cluster(fgl, half):
    "Default scheduler (a LocalCluster of worker processes): the real half of the CSC sample, ellipse95."
    got = match_lsdb(half, fgl, "ellipse95")
    ref = match_local(half, fgl, "ellipse95")
    assert_same_pairs(got, ref)
    assert got.meta["engine"] == "lsdb" and got.meta["n_partitions"] >= 1


@pytest.mark.parametrize("region", ["circle95", "radius:0.1deg"])
def test_shared_half_same_pairs_other_regions(fgl, half, region):
    assert_same_pairs(match_lsdb(half, fgl, region, scheduler="synchronous"), match_local(half, fgl, region))


def test_csc_like_table_and_file_names(fgl):
    "Any CSC-like table: the IVOA CSC2 example, given as file names."
    xml = DATA/"ivoa-dm-usecases-csc2/ivoa_csc2_example.xml"
    got = match_lsdb(xml, DATA/"pypi-fermipy-4fgl-dr4/gll_psc_v35.fit", "circle95", scheduler="threads")
    assert_same_pairs(got, match_local(read_csc(xml), fgl, "circle95"))
    assert len(got) == 34


def test_scheduler_by_address(fgl, half):
    "A scheduler given by address: the cluster started here stays up after the match (only the client closes)."
    from distributed import LocalCluster, Client
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        got = match_lsdb(half[:2000], fgl, "circle95", scheduler=cluster.scheduler_address)
        assert_same_pairs(got, match_local(half[:2000], fgl, "circle95"))
        with Client(cluster.scheduler_address) as c:   # still answering
            assert len(c.scheduler_info()["workers"]) == 1


def test_bad_scheduler():
    with pytest.raises(BadParameterError, match="scheduler must be None"):
        with dask_client("localhost:8786"): pass
    with pytest.raises(EngineUnavailableError, match="no Dask scheduler answers"):
        with dask_client("tcp://127.0.0.1:9"): pass


def test_counterparts_from_local_s3_hats():
    "Gaia and 2MASS counterparts from the hats-import copies in the demo S3 equal a direct KD-tree nearest-N."
    from mwnb.demo.archive import LocalArchive
    from mwnb.demo.hats import populate_hats, demo_rows
    la = LocalArchive(populate=False).start()
    try:
        urls = populate_hats(la)
        assert urls["gaia"].startswith("s3://") and urls["2mass"].startswith("s3://")
        for catalog, idcol, probe in (("gaia", "source_id", ([280.0, 279.996, 268.0677, 12.0], [-60.0, -59.997, 26.5075, 0.0])),
                                      ("2mass", "designation", ([10.02, 10.05, 10.685], [10.06, 10.07, 41.269]))):
            rows = demo_rows(catalog)
            pos = Table({"ra": probe[0] * u.deg, "dec": probe[1] * u.deg})
            radius, n = 100.0, 2
            got = counterparts_lsdb(pos, catalog, radius_arcsec=radius, n_nearest=n, url=urls[catalog], scheduler="synchronous")
            d, k = cKDTree(unit_vectors(rows["ra"], rows["dec"])).query(
                unit_vectors(pos["ra"], pos["dec"]), k=[1, 2], distance_upper_bound=2 * np.sin(np.radians(radius / 3600) / 2))
            pi, ki = np.nonzero(np.isfinite(d))
            assert got["pos_index"].tolist() == pi.tolist()
            assert np.asarray(got[idcol]).tolist() == np.asarray(rows[idcol])[k[pi, ki]].tolist()
            assert np.allclose(got["dist_arcsec"], np.degrees(2 * np.arcsin(d[pi, ki] / 2)) * 3600, rtol=0, atol=1e-6)
            assert len(got) >= 3 and got["rank"].max() == 1
        fermi = Table({"name": ["toy"], "ra": [280.0] * u.deg, "dec": [-60.0] * u.deg, "class1": ["unk"]})
        pairs = Table({"fermi_index": [0], "source_ra": [280.001], "source_dec": [-60.001]})
        near = find_counterparts_lsdb(fermi, pairs, "gaia", radius=0.03, n_nearest=1, url=urls["gaia"], scheduler="synchronous")
        assert near["fermi_name"].tolist() == ["toy"] * len(near) and 1 <= len(near) <= 2
    finally:
        la.stop()


@pytest.mark.slow   # a benchmark harness (about 33 s): the slow step runs it, the suite stays under 10 minutes
def test_tiny_scale_benchmark(tmp_path):
    "Every engine, two sizes, two alternating runs each: same pairs as the KD-tree, start-up apart, memory and load."
    t = scale_benchmark(sizes=(10_000, 40_000), n_sources=2_000, radius_arcsec=120, n_nearest=2, cache_dir=tmp_path,
                        scheduler="threads", repeats=2, log=lambda *a: None)
    assert list(t["engine"]) == ["grid", "kdtree", "astropy", "lsdb"] * 2
    assert list(t["n_catalog"]) == [10_000] * 4 + [40_000] * 4
    assert list(t["same_pairs"]) == ["True"] * 8 and set(t["reference"]) == {"kdtree"}
    assert (t["n_pairs"][4:] > t["n_pairs"][:4]).all() and (t["n_pairs"][:4] > 0).all()
    assert (t["n_runs"] == 2).all() and np.all(t["seconds_min"] <= t["seconds"]) and np.all(t["seconds"] <= t["seconds_max"])
    assert np.all(t["peak_MB"] > 50) and np.all(t["seconds"] > 0) and np.all(np.isfinite(t["load"]))
    assert np.allclose(t["rows_per_s"], t["n_catalog"] / t["seconds"])
    lsdb_rows = t["engine"] == "lsdb"
    assert np.all(t["startup_s"][lsdb_rows] >= t["import_s"][lsdb_rows]) and np.all(t["import_s"][lsdb_rows] > 0)
    assert np.all(t["startup_s"][~lsdb_rows] == 0)


def test_hats_kernels_compile_once_and_load_from_numba_cache(tmp_path):
    """hats declares its numba kernels without cache=True; mwnb turns numba's disk cache on, so the second fresh
    process loads every kernel the first compiled (cache hits, no misses), and the warm-up builds no margin."""
    import json, os, subprocess, sys
    code = ("import json, warnings; warnings.simplefilter('ignore')\n"
            "from unittest import mock\n"
            "from mwnb.lsdb_match import warm_up_lsdb\n"
            "from numba.core.registry import CPUDispatcher\n"
            "import hats.pixel_tree.pixel_alignment as a, hats.pixel_tree.moc_filter as m\n"
            "from lsdb.loaders.dataframe.margin_catalog_generator import MarginCatalogGenerator as G\n"
            "with mock.patch.object(G, '_create_catalog', side_effect=AssertionError('margin')), \\\n"
            "     mock.patch.object(G, '_create_empty_catalog', side_effect=AssertionError('margin')):\n"
            "    w = warm_up_lsdb()\n"
            "ks = [v for mod in (a, m) for v in vars(mod).values() if isinstance(v, CPUDispatcher)]\n"
            "print(json.dumps(dict(n_cached=w['n_cached'], hits=sum(sum(k.stats.cache_hits.values()) for k in ks),\n"
            "                      misses=sum(sum(k.stats.cache_misses.values()) for k in ks))))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0]["n_cached"] == 6 and runs[0]["misses"] > 0 and runs[0]["hits"] == 0       # compiled and written
    assert runs[1]["misses"] == 0 and runs[1]["hits"] == runs[0]["misses"]                   # loaded, not compiled
    assert any(tmp_path.rglob("*.nbi"))


def test_published_definition_and_extensions_on_request(fgl, half):
    """circle95 on LSDB: point sources only by default (extended sources counted in meta), the extensions' pairs added
    with extended=True and marked per pair, exactly as the KD-tree engine."""
    point = match_lsdb(half, fgl, "circle95", scheduler="synchronous")
    ext = match_lsdb(half, fgl, "circle95", scheduler="synchronous", extended=True)
    assert_same_pairs(point, match_local(half, fgl, "circle95"))
    assert_same_pairs(ext, match_local(half, fgl, "circle95", extended=True))
    assert point.meta["n_extended_left_out"] == 82 and ext.meta["n_extended_left_out"] == 0
    assert (point["region_source"] == "conf_95").all() and (ext["region_source"] == "extension").sum() == 234
