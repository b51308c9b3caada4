"""Network reliability of the TAP layer, NumPy-safe ADQL, typed bad-input errors, light science-module imports.

Every server here is a real one on 127.0.0.1: a socket server that accepts and never answers, the local
demo archive (its TAP engine parses the ADQL and answers errors with QUERY_STATUS=ERROR), and a name
under the reserved `.invalid` top-level domain that no resolver knows.
"""
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from mwnb.archive import tap_query, tap_upload_join
from mwnb.errors import ArchiveUnavailableError, BadInputFileError, ServiceQueryError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not DATA.exists(): DATA = Path("/work/shared/data")


class HungServer:
    "A TCP server on 127.0.0.1 that accepts every connection, reads what comes, and never answers."
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.connections, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/tap"

    def _serve(self):
        while not self.stop.is_set():
            try: conn, _ = self.sock.accept()
            except socket.timeout: continue
            conn.setblocking(False)
            self.connections.append(conn)   # kept open, never written to

    def close(self):
        self.stop.set(); self.thread.join(2)
        for c in self.connections: c.close()
        self.sock.close()


@pytest.fixture
def hung_server(monkeypatch):
    monkeypatch.setenv("MWNB_TIMEOUT", "1")
    monkeypatch.setenv("MWNB_MAX_RETRIES", "1")
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    import pyvo  # noqa: F401  (imported before the clock starts: its import time is not the query's)
    server = HungServer()
    yield server
    server.close()


@pytest.mark.timeout(60)   # without mwnb's timeouts this test would hang for ever
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_hung_tap_server_times_out_with_retries(hung_server, mode):
    from mwnb.config import conf
    tries = 1 + conf.max_retries
    # each try waits at most one read timeout (the connection itself is accepted at once), plus the backoff
    # between tries and 1.5 s for everything else (session, pyvo objects, thread scheduling on a busy machine)
    bound = tries * conf.timeout + conf.retry_backoff * (tries - 1) + 1.5
    t0 = time.monotonic()
    with pytest.raises(ArchiveUnavailableError) as err:
        tap_query(hung_server.url, "SELECT TOP 1 * FROM csc", mode=mode)
    elapsed = time.monotonic() - t0
    print(f"{mode}: gave up after {elapsed:.2f} s (bound {bound:.2f} s, {len(hung_server.connections)} connections)")
    assert elapsed < bound
    assert elapsed >= tries * conf.timeout * 0.9   # it did wait out the read timeout on every try
    assert len(hung_server.connections) == tries
    assert f"after {tries} tries" in str(err.value) and hung_server.url in str(err.value)


@pytest.mark.timeout(60)
def test_async_job_that_never_finishes_is_bounded(archive, monkeypatch):
    "A job that stays EXECUTING ends after job_timeout with ArchiveUnavailableError, and is deleted."
    from mwnb.demo import tap as demo_tap
    monkeypatch.setattr(demo_tap.UwsJob, "run", lambda self, engine, uploads: setattr(self, "phase", "EXECUTING"))
    t0 = time.monotonic()
    with pytest.raises(ArchiveUnavailableError, match="did not finish within 1 s and was deleted"):
        tap_query("heasarc", "SELECT TOP 1 name FROM csc", mode="async", job_timeout=1)
    assert time.monotonic() - t0 < 4
    assert [r for r in archive.requests if r["method"] == "DELETE"], "the unfinished job was not deleted"


@pytest.mark.timeout(30)
def test_unresolvable_host_fails_at_once_naming_the_service(monkeypatch):
    monkeypatch.setenv("MWNB_HEASARC_TAP", "http://mwnb-no-such-host.invalid/tap")
    monkeypatch.setenv("MWNB_MAX_RETRIES", "4")
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "1")   # four retries would take > 15 s: one try takes well under 2 s
    import pyvo  # noqa: F401
    for mode in ("sync", "async"):
        t0 = time.monotonic()
        with pytest.raises(ArchiveUnavailableError) as err:
            tap_query("heasarc", "SELECT TOP 1 * FROM csc", mode=mode)
        elapsed = time.monotonic() - t0
        msg = str(err.value)
        assert elapsed < 2, f"{mode}: {elapsed:.2f} s"
        assert msg.startswith("heasarc at http://mwnb-no-such-host.invalid/tap")
        assert "'mwnb-no-such-host.invalid' does not resolve" in msg and "after 1 tries" in msg


def test_server_query_error_keeps_the_server_message(archive):
    for mode in ("sync", "async"):
        adql = "SELECT no_such_column FROM csc"
        with pytest.raises(ServiceQueryError) as err:
            tap_query("heasarc", adql, mode=mode)
        e = err.value
        assert e.service == "heasarc" and e.query == adql and e.url.endswith("/heasarc/tap")
        assert "no such column: no_such_column" in e.message, e.message
        assert "rejected the query" in str(e) and adql in str(e)
    from mwnb.archive import with_top
    sent = [r for r in archive.requests_to("/heasarc/tap/sync")
            if with_top(r["params"].get("QUERY", "SELECT x"), None) == "SELECT no_such_column FROM csc"]
    assert len(sent) == 1   # a refused query is not retried (the column discovery that follows asks TAP_SCHEMA instead)


def test_http_4xx_answer_to_a_query_is_a_service_query_error(archive):
    url = archive.url + "/heasarc/tap/nothing-here"
    with pytest.raises(ServiceQueryError) as err:
        tap_query(url, "SELECT TOP 1 name FROM csc")
    assert "404" in err.value.message or "no TAP resource" in err.value.message, err.value.message


NUMPY_SCALARS = [np.float64, np.float32, np.int64]


@pytest.fixture
def sky_tables(archive):
    "Small position tables on the local TAP services (names of their own: the demo tables stay as they are)."
    rng = np.random.default_rng(9)
    ra, dec = rng.uniform(10, 11, 120), rng.uniform(-1, 1, 120)
    csc = Table({"name": [f"X{i}" for i in range(120)], "ra": ra, "dec": dec, "bii": dec, "b_flux_ap": np.full(120, 1e-13)})
    archive.add_table("mwnb_rel_csc", csc, service="heasarc")
    gaia = Table({"source_id": np.arange(120, dtype=np.int64), "ra": ra, "dec": dec, "phot_g_mean_flux": np.ones(120),
                  "phot_g_mean_mag": np.full(120, 15.0), "phot_variable_flag": ["CONSTANT"] * 120,
                  "classprob_dsc_combmod_quasar": np.zeros(120), "classprob_dsc_combmod_galaxy": np.zeros(120),
                  "classprob_dsc_combmod_star": np.ones(120), "ra_error": np.full(120, 0.1), "dec_error": np.full(120, 0.1), "ra_dec_corr": np.zeros(120),
                  "pmra": np.zeros(120), "pmdec": np.zeros(120), "parallax": np.zeros(120), "ref_epoch": np.full(120, 2016.0),
                  "bp_rp": np.full(120, 1.0)})
    archive.add_table("mwnb_rel_gaia", gaia, service="gaia")
    tm = Table({"designation": [f"J{i:04d}" for i in range(120)], "ra": ra, "dec": dec, "j_m": np.full(120, 12.0),
                "h_m": np.full(120, 11.5), "k_m": np.full(120, 11.0), "ph_qual": ["AAA"] * 120,
                "err_maj": np.full(120, 0.1), "err_min": np.full(120, 0.1), "err_ang": np.zeros(120, dtype=np.int64)})
    archive.add_table("mwnb_rel_2mass", tm, service="irsa")
    return csc, gaia, tm


@pytest.mark.parametrize("kind", NUMPY_SCALARS, ids=lambda k: k.__name__)
def test_numpy_values_make_valid_adql_in_every_builder(sky_tables, kind, monkeypatch):
    from mwnb.catalogs import gaia_cone, twomass_cone, read_fermi, normalise
    from mwnb.crossmatch import match_tap, match_local, find_counterparts, COUNTERPART_CATALOGS
    csc, gaia, tm = sky_tables
    ra0, dec0 = kind(10), kind(0)
    radius = kind(1) if kind is np.int64 else kind(0.5)
    inside = lambda t, r: int((np.hypot((t["ra"] - 10) * np.cos(np.radians(t["dec"])), t["dec"]) <= r).sum())
    # archive: paging range bounds (maxrec=50 cuts the 120 rows, so tap_query bisects the given range)
    paged = tap_query("heasarc", "SELECT name, ra FROM mwnb_rel_csc", maxrec=50, page_by=("ra", kind(0), kind(360)))
    assert sorted(paged["name"]) == sorted(csc["name"])
    # catalogs: the cone searches
    g = gaia_cone(ra0, dec0, radius, table="mwnb_rel_gaia")
    assert len(g) == inside(gaia, float(radius)) > 0
    assert len(twomass_cone(ra0, dec0, radius, table="mwnb_rel_2mass")) == len(g)
    # crossmatch: the server-side pair search (Fermi uploaded) with NumPy cuts, and the counterpart join
    fermi = Table({"name": ["F1", "F2"], "ra": [10.2, 10.7], "dec": [0.1, -0.4], "semi_major_95": [0.2, 0.15],
                   "semi_minor_95": [0.1, 0.15], "pos_ang_95": [30.0, 0.0]})
    fermi = read_fermi(fermi)
    sources = normalise(csc)
    cut = kind(1) if kind is np.int64 else kind(0.5)
    server = match_tap(sources, fermi, "circle95", source_table="mwnb_rel_csc", b_max=cut, min_flux=kind(0))
    local = match_local(sources[np.abs(np.asarray(sources["dec"])) <= float(cut)], fermi, "circle95")
    assert len(server) == len(local) > 0
    monkeypatch.setitem(COUNTERPART_CATALOGS, "gaia", {**COUNTERPART_CATALOGS["gaia"], "table": "mwnb_rel_gaia"})
    stars = find_counterparts(fermi, server, "gaia", radius=kind(1) if kind is np.int64 else kind(0.01), n_nearest=1)
    assert len(stars) > 0 and set(stars["fermi_name"]) <= {"F1", "F2"}


def test_unreadable_table_files_are_bad_input(tmp_path, capsys):
    from mwnb.catalogs import read_any, read_csc
    from mwnb.cli import main
    fits_file = tmp_path / "sources.fits"
    fits_file.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"garbage" * 100)
    text_file = tmp_path / "sources.txt"
    text_file.write_text("this is not a table\n\x00\x01\x02 nor is this;;;\n")
    for f in (fits_file, text_file):
        with pytest.raises(BadInputFileError) as err:
            read_any(f)
        msg = str(err.value)
        assert str(f) in msg and "is not a readable table" in msg and "VOTable" in msg and "ECSV" in msg
    no_positions = tmp_path / "no_positions.csv"
    no_positions.write_text("name,flux\nA,1.0\n")
    with pytest.raises(BadInputFileError, match="no_positions.csv cannot be used as an X-ray source table.*ra/dec"):
        read_csc(no_positions)
    # the command says it in one line, without a traceback
    fermi = DATA / "pypi-fermipy-4fgl-dr4/gll_psc_v35.fit"
    assert main(["xmatch", "--xray", str(text_file), "--fermi", str(fermi), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mwnb xmatch: error: ") and "sources.txt is not a readable table" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_image_is_not_a_spectrum(tmp_path, capsys):
    from mwnb.spectra import load_spectrum
    from mwnb.cli import main
    from mwnb.errors import MissingInputError
    image = DATA / "sherpa-chandra-image/image2.fits"
    with pytest.raises(BadInputFileError, match=r"image2.fits is not an OGIP spectrum: no SPECTRUM extension \(its extensions: PRIMARY, GTI"):
        load_spectrum(image)
    with pytest.raises(MissingInputError):
        load_spectrum(tmp_path / "missing.pha")
    assert main(["fit-spectra", str(image), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "not an OGIP spectrum" in err and "Traceback" not in err


HEAVY = ["scipy", "astropy.table", "astropy.units", "astropy.coordinates", "astropy.io.fits", "astropy.wcs",
         "matplotlib", "pyvo", "requests", "sherpa", "gammapy", "tqdm"]


@pytest.mark.parametrize("module", ["archive", "catalogs", "crossmatch", "skyplots", "spectra", "fermi"])
def test_science_modules_import_nothing_heavy(module):
    code = f"import sys, mwnb.{module}; print(sorted(h for h in {HEAVY!r} if h in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import mwnb.{module} pulls in {out.strip()}"


def test_crossmatch_import_time():
    "`python -X importtime -c 'import mwnb.crossmatch'`: cumulative time of the last line (target 0.3 s)."
    runs = []
    for _ in range(3):   # best of three: the machine is shared
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mwnb.crossmatch"],
                             capture_output=True, text=True, check=True).stderr
        last = err.strip().splitlines()[-1]
        assert last.endswith("mwnb.crossmatch"), last
        runs.append(int(re.split(r"\s*\|\s*", last)[1]) / 1e6)
    print(f"import mwnb.crossmatch: {', '.join(f'{s:.3f}' for s in runs)} s")
    assert min(runs) < 0.5


def test_whole_catalog_with_no_rows_is_an_empty_result(archive):
    from mwnb.catalogs import csc_sources, chandra_observations
    from mwnb.errors import EmptyResultError
    empty = Table({"name": np.array([], str), "ra": np.array([]), "dec": np.array([]), "lii": np.array([]),
                   "bii": np.array([]), "b_flux_ap": np.array([])})
    archive.add_table("mwnb_rel_empty", empty, service="heasarc")
    with pytest.raises(EmptyResultError, match="heasarc returned no rows for the whole Chandra Source Catalog table 'mwnb_rel_empty'"):
        csc_sources(table="mwnb_rel_empty")
    with pytest.raises(ServiceQueryError, match="no such table"):   # a table that is not there is the server's error
        chandra_observations(table="mwnb_rel_no_such_table")
