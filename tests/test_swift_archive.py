"""mwnb.swift against the archive: server-given names and ObsIDs refused before anything is written, ADQL with
numpy values, a hung HEASoft tool stopped with its children, and a light `import mwnb.swift`."""
import os, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from astropy.table import Table

from mwnb.cloud import s3_filesystem
from mwnb.errors import UnsafePathError
from mwnb import swift


def _newly_imported(module: str) -> list:
    "Heavy modules (network clients, astropy's tables, FITS, coordinates ...) that `import mwnb.<module>` loads after mwnb.config."
    out = subprocess.run([sys.executable, "-c", "import sys; import mwnb.config; "
                          f"mods = set(sys.modules); import mwnb.{module}; print(sorted(set(sys.modules) - mods))"],
                         capture_output=True, text=True, check=True).stdout
    return [x for x in eval(out) if x.split(".")[0] in ("requests", "s3fs", "pyvo", "aiohttp", "tqdm")
            or x in ("astropy.io.fits", "astropy.table", "astropy.coordinates", "astropy.time", "astropy.units",
                     "astropy.wcs", "astropy.nddata")]


# server-given names: a listed S3 key with '..' and malformed ObsIDs are refused before anything is written
def test_listed_key_with_dotdot_is_refused(archive, tmp_path):
    obs = "swift/data/obs/2011_08/00099999999"
    archive.put_object("nasa-heasarc", f"{obs}/xrt/ok.txt", b"ok")
    archive.put_object("nasa-heasarc", f"{obs}/xrt/../../../../../../escape.txt", b"escaped")
    assert any(".." in k for k in s3_filesystem().find(f"nasa-heasarc/{obs}/xrt"))   # the listing really has it
    with pytest.raises(UnsafePathError, match=r"'\.\.'"):
        swift.download_observation(f"s3://nasa-heasarc/{obs}/", tmp_path / "dest", subdirs=("xrt",))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []                     # not even ok.txt


def test_malformed_obsids_are_refused(archive, tmp_path):
    with pytest.raises(UnsafePathError, match="not a Swift ObsID"):
        swift.swift_obs_uri("0003196805/..", 55788.6)
    with pytest.raises(UnsafePathError, match="not a Swift ObsID"):
        swift.download_observation("s3://nasa-heasarc/swift/data/obs/2011_08/..", tmp_path)
    archive.add_table("swiftbad", Table({"__row": ["1", "2"], "obsid": ["00031968059", "../../../tmp/x"], "name": ["T Pyx"] * 2,
                                         "ra": [136.17, 136.17], "dec": [-32.38, -32.38], "start_time": [55700.0, 55701.0],
                                         "xrt_exposure": [1e3, 1e3]}))
    with pytest.raises(UnsafePathError, match="tmp/x"):
        swift.query_swift_observations(136.17, -32.38, catalog="swiftbad")
    row = swift.process_observation("../../x", tmp_path / "data", tmp_path / "work", 136.17, -32.38, "s.reg", "b.reg")
    assert (row["status"], row["failed_task"]) == ("failed", "obsid") and not (tmp_path / "work").exists()


def test_swift_adql_gets_numpy_values_as_plain_numbers(archive):
    t = swift.query_swift_observations(np.float64(136.17292), np.float64(-32.37986), radius_arcmin=np.float32(12.0))
    q = t.meta["query"]
    assert "np." not in q and "CIRCLE('ICRS', 136.17292, -32.37986, 0.2)" in q
    # as many rows as the demo's swiftmastr has within 0.2 deg, counted independently with astropy
    from astropy.coordinates import SkyCoord
    from mwnb.demo.swift import tpyx_master_table
    demo = tpyx_master_table()
    near = SkyCoord(demo["ra"], demo["dec"], unit="deg").separation(SkyCoord(136.17292, -32.37986, unit="deg")).deg <= 0.2
    assert len(t) == int(near.sum()) > 0


# a HEASoft tool that hangs is stopped with its children
def test_a_hung_heasoft_tool_is_stopped_with_its_children(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"; bin_dir.mkdir()
    tool = bin_dir / "xrtexpomap"
    tool.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {tmp_path}/child.pid\nsleep 60\n"); tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("MWNB_SUBPROCESS_TIMEOUT", "1")
    t0 = time.time()
    with pytest.raises(swift.HeasoftTaskError, match="did not finish within 1 s"):
        swift.run_task("xrtexpomap", {"infile": "x"}, tmp_path / "task")
    assert time.time() - t0 < 5
    child = int((tmp_path / "child.pid").read_text())
    time.sleep(0.2)
    state = Path(f"/proc/{child}/stat").read_text().split()[2] if Path(f"/proc/{child}").exists() else "gone"
    assert state in ("gone", "Z"), state                                             # the grandchild died too
    assert "stopped after 1 s" in (tmp_path / "task" / "xrtexpomap.log").read_text()


def test_importing_swift_loads_no_network_client_or_astropy_table():
    assert _newly_imported("swift") == []
