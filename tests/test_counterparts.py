"""The counterpart search: one catalog table, the forms each service accepts, and upload joins bounded by the rows
they return as well as the positions they send, shrinking on cut, slow or refused answers."""
import numpy as np
import pytest
from astropy.table import Table

import mwnb.counterparts as cp
from mwnb.counterparts import query_near, counterparts_adql, per_source_adql, catalog_spec
from mwnb.errors import ArchiveUnavailableError, ServiceQueryError, TruncatedResultError


def _positions(n):
    return Table({"pos_id": np.arange(n, dtype=np.int64), "ra": np.linspace(10, 11, n), "dec": np.zeros(n)})


class FakeService:
    "Answers an upload join with `per_position` stars per uploaded position; refuses, cuts or times out above `limit`."
    def __init__(self, per_position=3, limit=None, failure="refuse"):
        self.per_position, self.limit, self.failure, self.sizes = per_position, limit, failure, []

    def __call__(self, service, adql, table, mode):
        self.sizes.append(len(table))
        if self.limit is not None and len(table) > self.limit:
            if self.failure == "refuse":
                raise ServiceQueryError(service, "http://x", f"upload too large: limit {self.limit} rows")
            if self.failure == "timeout":
                raise ArchiveUnavailableError(service, "http://x", "ReadTimeout", 3)
            raise TruncatedResultError(self.limit, self.limit, adql)
        k = np.repeat(np.arange(len(table)), self.per_position)
        rows = Table({"pos_id": np.asarray(table["pos_id"])[k], "source_id": np.arange(len(k), dtype=np.int64),
                      "cat_ra": np.asarray(table["ra"])[k] + 1e-4 * (np.arange(len(k)) % self.per_position + 1),
                      "cat_dec": np.asarray(table["dec"])[k]})
        rows["dist"] = 1e-4 * (np.arange(len(k)) % self.per_position + 1)
        return rows


@pytest.mark.parametrize("failure", ["refuse", "timeout", "truncate"])
def test_upload_join_halves_on_refused_slow_or_cut_answers_and_loses_nothing(monkeypatch, failure):
    fake = FakeService(limit=30, failure=failure)
    monkeypatch.setattr(cp, "tap_query_upload", fake)
    rows = query_near("gaia", _positions(100), 0.01, n_nearest=2, chunk_rows=100)
    assert len(rows) == 200 and sorted(set(rows["pos_id"].tolist())) == list(range(100))
    assert fake.sizes[:3] == [100, 50, 25] and max(s for s in fake.sizes[3:]) <= 30


def test_a_refusal_that_is_not_about_size_is_raised_at_once(monkeypatch):
    def refuse(service, adql, table, mode): raise ServiceQueryError(service, "http://x", "no such column: g.foo")
    monkeypatch.setattr(cp, "tap_query_upload", refuse)
    with pytest.raises(ServiceQueryError, match="no such column"):
        query_near("gaia", _positions(10), 0.01)


def test_chunks_shrink_with_the_rows_answers_bring_back(monkeypatch):
    fake = FakeService(per_position=50)
    monkeypatch.setattr(cp, "tap_query_upload", fake)
    rows = query_near("gaia", _positions(400), 0.01, chunk_rows=200, max_rows=2000)
    # the first 200 positions brought 10,000 rows: the next chunks carry 200 * 2000 / (2 * 10000) = 20 positions
    assert fake.sizes[0] == 200 and set(fake.sizes[1:]) == {20} and len(rows) == 400 * 50


def test_each_service_gets_the_form_it_accepts():
    assert " JOIN gaiadr3.gaia_source AS g ON " in counterparts_adql("gaia") and catalog_spec("gaia")["mode"] == "async"
    q = counterparts_adql("2mass")          # IRSA TAP cannot parse JOIN (fornax-demo-notebooks PR #492)
    assert " JOIN " not in q and "FROM TAP_UPLOAD.t1 AS u, fp_psc AS g WHERE" in q
    q = per_source_adql("2mass", 210.80225, 54.34894, 0.006, 3)    # the PR's per-source workaround
    assert q.startswith("SELECT TOP 3 ") and "AS dist FROM fp_psc WHERE CONTAINS(" in q and q.endswith("ORDER BY dist ASC")


def test_per_source_queries_let_the_server_pick_the_nearest(archive):
    """Against the demo IRSA (which refuses JOIN as IRSA does): per-source TOP N finds the real 2MASS star."""
    pos = Table({"pos_id": [0, 1], "ra": [10.684737, 10.9], "dec": [41.28, 41.0]})
    rows = query_near("2mass", pos, 0.03, n_nearest=3, method="per_source")
    assert rows.meta["method"] == "per_source" and list(rows["designation"]) == ["00424433+4116085"]
    assert list(rows["pos_id"]) == [0] and abs(rows["dist"][0] - 0.01096) < 1e-4
    up = query_near("2mass", pos, 0.03, n_nearest=3, method="upload")       # the comma-join upload: same star
    assert list(up["designation"]) == ["00424433+4116085"] and abs(up["dist"][0] - rows["dist"][0]) < 1e-9
