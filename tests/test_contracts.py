"""The contracts (mwnb/contracts/*.yaml) are sourced, the demo archive is built from them, and every ADQL query the
library builds names only published tables and columns."""
import numpy as np
import pytest
from mwnb.contracts import (TAP_CONTRACTS, tap_tables, contract_columns, check_adql, load_contract, contracts_dir)


def entries(doc):
    "Every column / field / layout entry of a contract document (dicts that have a name)."
    if isinstance(doc, dict):
        if "name" in doc and ("source" in doc or "verified" in doc): yield doc
        for v in doc.values(): yield from entries(v)
    elif isinstance(doc, list):
        for v in doc: yield from entries(v)


@pytest.mark.parametrize("path", sorted(p.name for p in contracts_dir().glob("*.yaml")))
def test_every_contract_entry_cites_a_source_and_says_whether_it_was_seen(path):
    doc = load_contract(path)
    assert doc["sources"], path
    found = list(entries(doc))
    assert found, path
    for e in found:
        assert e.get("source"), f"{path}: {e['name']} has no source"
        assert isinstance(e.get("verified"), bool), f"{path}: {e['name']} does not say verified true/false"


def test_the_demo_archive_serves_exactly_the_contract_columns(local_archive):
    "Every contracted table the demo serves has the contract's columns, in order, and nothing else (TAP_SCHEMA)."
    from mwnb.archive import tap_query
    served_any = 0
    for service in TAP_CONTRACTS:
        engine = local_archive.engines[service]
        for table in engine.tables:
            if table.startswith(("tap_upload.", "tap_schema.")) or table not in tap_tables(service): continue
            cols = tap_query(service, f"SELECT column_name FROM tap_schema.columns WHERE table_name = '{table}'")
            assert list(cols["column_name"]) == [c["name"] for c in contract_columns(service, table)], (service, table)
            served_any += 1
    assert served_any >= 8   # csc, fermilpsc, chanmaster, swiftmastr, rosmaster, gaia_source, fp_psc, obscore
    assert local_archive.populate_errors == {}


def test_a_column_the_service_lacks_is_named_with_the_real_columns(archive):
    from mwnb.archive import tap_query
    from mwnb.errors import ServiceQueryError
    with pytest.raises(ServiceQueryError) as e:
        tap_query("heasarc", "SELECT target_name, obsid FROM swiftmastr")
    msg = str(e.value)
    assert "swiftmastr has no column target_name" in msg and "start_time" in msg
    assert "mwnb/contracts/heasarc_tap.yaml, table swiftmastr" in msg


def test_registry_adql_is_in_the_regtap_contract():
    from mwnb.archive import registry_adql
    for std in ("tap", "sia", "sia2"):
        assert check_adql("registry", registry_adql("chandra heasarc", std)) == []


@pytest.mark.parametrize("service", ["heasarc", "irsa", "gaia", "fermi_lat"])
def test_every_service_behaviour_cites_a_source_and_says_whether_it_is_verified(service):
    from mwnb.contracts import behaviours
    found = behaviours(service)
    assert found, service
    for name, b in found.items():
        assert b.get("what") and b.get("source") and b.get("demo"), f"{service}: {name}"
        assert isinstance(b.get("verified"), bool), f"{service}: {name}"
    print(service, {n: b["verified"] for n, b in found.items()})


def test_the_demo_shows_the_verified_behaviours_by_default():
    "Every behaviour the demo engine switches on is a contract behaviour of that service, and the verified ones are on."
    from mwnb.contracts import behaviours
    from mwnb.demo.tap import BEHAVIOURS
    assert BEHAVIOURS["heasarc"]["no_top_random_subset"] and BEHAVIOURS["irsa"]["join_refused"] and BEHAVIOURS["gaia"]["sync_row_limit"]
    names = {"heasarc": {"no_top_random_subset", "huge_top_fails"}, "irsa": {"join_refused", "distance_negative_refused"},
             "gaia": {"sync_row_limit"}}
    for service, switches in BEHAVIOURS.items():
        assert set(switches) == names[service]
        contract = behaviours(service)
        for switch, on in switches.items():
            entry = contract.get(switch) or contract["distance_negative_coordinates"]   # the demo names its refusal
            assert on == entry["verified"], f"{service}.{switch}: on={on} but verified={entry['verified']}"
