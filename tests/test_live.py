"""Live checks against the real archives: one per service call mwnb makes, each asserting the published contract
(mwnb/contracts/*.yaml). Marked `remote_data`: skipped here (no network), run with `pytest --remote-data=any`."""
import json
import pytest
from mwnb.contracts import TAP_CONTRACTS, tap_tables, contract_columns, layout, load_contract

pytestmark = pytest.mark.remote_data

TAP_TABLES = [(svc, t) for svc in TAP_CONTRACTS for t in tap_tables(svc) if not t.startswith("tap_schema.")]
# the three named targets of the tutorials (ICRS degrees) and a table where each must have rows
TARGET_ROWS = [("Crab", 83.63321, 22.01446, "chanmaster"), ("Crab", 83.63321, 22.01446, "rosmaster"),
               ("T Pyx", 136.17292, -32.37986, "swiftmastr"), ("B0453-685", 73.39, -68.49, "chanmaster")]


@pytest.fixture(autouse=True)
def live(monkeypatch):
    "The real endpoints: no MWNB_* or AWS endpoint override may leak in from a local archive."
    import os
    for k in [k for k in os.environ if k.startswith("MWNB_") or k == "AWS_ENDPOINT_URL_S3"]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("MWNB_ARCHIVE", "live")


@pytest.mark.parametrize("service,table", TAP_TABLES, ids=[f"{s}-{t}" for s, t in TAP_TABLES])
def test_tap_schema_lists_every_verified_contract_column(service, table):
    from mwnb.archive import tap_query, adql_literal
    bare = table.split(".")[-1]
    got = tap_query(service, "SELECT table_name, column_name FROM tap_schema.columns WHERE "
                             f"table_name = {adql_literal(table)} OR table_name = {adql_literal(bare)}")
    served = {str(c).lower() for c in got["column_name"]}
    missing = [c["name"] for c in contract_columns(service, table) if c.get("verified") and c["name"].lower() not in served]
    assert not missing, f"{service} {table}: contract columns not served: {missing}"


@pytest.mark.parametrize("service,table", TAP_TABLES, ids=[f"{s}-{t}" for s, t in TAP_TABLES])
def test_select_of_the_contract_columns_returns_rows(service, table):
    from mwnb.archive import tap_query
    cols = [c["name"] for c in contract_columns(service, table) if c.get("verified") and not c["name"].startswith("__")]
    t = tap_query(service, f"SELECT TOP 3 {', '.join(cols)} FROM {table}")
    assert len(t) >= 1 and {c.lower() for c in t.colnames} >= {c.lower() for c in cols}


@pytest.mark.parametrize("target,ra,dec,table", TARGET_ROWS, ids=[f"{t}-{tab}" for t, _, _, tab in TARGET_ROWS])
def test_targets_have_rows(target, ra, dec, table):
    from mwnb.archive import tap_query, adql_literal
    t = tap_query("heasarc", f"SELECT * FROM {table} WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', "
                             f"{adql_literal(ra)}, {adql_literal(dec)}, 0.2)) = 1")
    assert len(t) > 0, f"no {table} rows within 0.2 deg of {target}"


def test_swiftmastr_has_the_published_t_pyx_obsids():
    "heasarc_tap.yaml swiftmastr published_example: the 8 ObsIDs of the T Pyx joint fit, start_time 55807.75-55813.84."
    from mwnb.archive import tap_query
    t = tap_query("heasarc", "SELECT name, obsid, start_time FROM swiftmastr WHERE CONTAINS(POINT('ICRS', ra, dec), "
                             "CIRCLE('ICRS', 136.17292, -32.37986, 0.2)) = 1")
    want = {"00031968059", "00031968060", "00031968061", "00031968062", "00032089001", "00032089002", "00032089004", "00032089005"}
    assert want <= {str(o) for o in t["obsid"]}


def test_heasarc_sia_and_datalink_give_a_cloud_copy():
    "heasarc_sia.yaml: SIA v1 rows with obs_title/detector; getdatalink() '#this' row with cloud_access JSON (aws.key)."
    import pyvo
    from mwnb.config import conf
    from mwnb.archive import vo_session
    rows = pyvo.dal.SIAService(conf.heasarc_sia, session=vo_session()).search(pos=(83.63321, 22.01446), size=0.1, format="image/fits")
    assert len(rows) > 0 and {"obs_title", "detector", "name"} <= {f.lower() for f in rows.fieldnames}
    this = next(rows[0].getdatalink().bysemantics("#this"))
    assert json.loads(this["cloud_access"])["aws"]["key"]


def test_irsa_sia2_allwise_has_cloud_access():
    import pyvo
    from mwnb.config import conf
    from mwnb.archive import vo_session
    from mwnb.cloud import cloud_uri
    rows = pyvo.dal.SIA2Service(conf.irsa_sia, session=vo_session()).search(pos=(83.63321, 22.01446, 0.05), collection="wise_allwise")
    assert len(rows) > 0
    assert cloud_uri(rows.to_table()[0]).startswith("s3://nasa-irsa-wise/wise/allwise/images/")


def test_mast_path_lookup_resolves_a_ps1_uri():
    from mwnb.cloud import cloud_uri
    uri = cloud_uri("mast:PS1/product/rings.v3.skycell.1334.061.stk.r.unconv.exp.fits")
    assert uri == "s3://stpubdata/panstarrs/ps1/public/rings.v3.skycell/1334/061/rings.v3.skycell.1334.061.stk.r.unconv.exp.fits"


@pytest.mark.parametrize("name", [l["name"] for l in load_contract("s3_layouts.yaml")["layouts"] if l.get("verified")])
def test_s3_layout_examples_exist(name):
    from mwnb.cloud import s3_filesystem
    fs = s3_filesystem()
    for ex in layout(name).get("examples") or []:
        path = ex.split()[0]
        if path.startswith("https://"): continue
        key = path if path.startswith("s3://") else f"s3://{layout(name)['bucket']}/{path}"
        assert fs.exists(key.rstrip("/")), key


def test_lat_data_server_form_answers():
    from mwnb.config import conf
    from mwnb.archive import http_get
    assert "coordfield" in http_get(conf.fermi_lat_server, service="LAT data server").text


def test_sesame_resolves_t_pyx():
    from mwnb.targets import sesame_resolve
    ra, dec = sesame_resolve("T Pyx")
    assert abs(ra - 136.17292) < 0.01 and abs(dec + 32.37986) < 0.01
