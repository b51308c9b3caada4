# %% [markdown]
# # Getting started with Swift-XRT: the supersoft phase of T Pyx
#
# > Find a source's Swift observations in HEASARC's master table, keep those in a window of days
# > after an event, fetch them from the archive's S3 copy, run the XRT tools on each in parallel,
# > and fit all spectra jointly with an absorbed blackbody plus bremsstrahlung.
#
# The recurrent nova T Pyx erupted on MJD 55665 (2011 April 14). Between days 123 and 151 Swift-XRT
# saw its supersoft source; the published joint fit of 8 observations gave nH = 0.1364e22 cm^-2,
# blackbody kT = 0.0469 keV and bremsstrahlung kT = 1.434 keV.
#
# Everything below is parameterised: `mwnb run "T Pyx"`, or for another source
# `papermill swift_xrt_tpyx.ipynb out.ipynb -p target NAME -p ra DEG -p dec DEG -p event_mjd MJD ...`.
# With `archive = "local"` it runs on the local demo archive, whose spectra are **simulated** from the
# published fit through real Swift-XRT responses (see `mwnb.demo.swift`).

# %% tags=["parameters"]
target = "T Pyx"
ra = 136.17292              # deg, ICRS
dec = -32.37986             # deg, ICRS
event_mjd = 55665.0         # discovery of the 2011 outburst
window_start_day = 123.0    # keep observations between these days after the event
window_end_day = 151.0
search_radius_arcmin = 12.0
src_radius_arcsec = 180.0   # source circle
bkg_radii_arcsec = [240.0, 390.0]  # background annulus
model = "tbabs*(bbody+bremss)"
tie = ["nH"]                # shared by all observations; the rest is free per observation
band = [0.3, 7.0]           # keV
start = {"bbody.kT": 0.1, "bremss.kT": 3.0}  # starting values (keV)
engine = "auto"             # auto | xspec (PyXspec) | sherpa
n_workers = 0               # processes for the XRT tools (0: conf.n_workers)
archive = "auto"            # live | local | auto (MWNB_ARCHIVE)
out_dir = "mwnb_products"

# %%
from pathlib import Path
import numpy as np
from IPython.display import Image, display
from astropy.table import Table, join
from mwnb.config import archive_note
from mwnb.demo.archive import use_archive
from mwnb.targets import check_coordinates
from mwnb import swift, spectra

la = use_archive(archive)
ra, dec = check_coordinates(ra, dec)
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
data_dir = out / "data"
print(f"{target} at ({ra:.5f}, {dec:.5f}); archive: {archive_note()}")

def stand_in_note(path) -> str:
    "The file's own stand-in label (MWNBDEMO in any of its headers); '' for genuine data."
    from astropy.io import fits
    with fits.open(path) as h:
        return next((str(x.header["MWNBDEMO"]) for x in h if x.header.get("MWNBDEMO")), "")


# %% [markdown]
# ## Observations
#
# HEASARC's Swift master table, searched around the target and sorted by start time:

# %%
catalog = swift.swift_master_catalog(keywords="swift", archive=archive)
obs = swift.query_swift_observations(ra, dec, search_radius_arcmin, catalog=catalog)
swift.select_window(swift.days_since(obs, event_mjd), window_start_day, window_end_day)
obs.write(out / "swift_observations.ecsv", overwrite=True)
selected = obs[obs["selected"]]
print(f"{catalog}: {len(obs)} observations, {len(selected)} between days {window_start_day} and {window_end_day}")
selected["obsid", "target_name", "start_time", "day", "xrt_exposure"]

# %%
swift.plot_exposure_by_day(obs, out / "exposure_by_day.png", title=f"{target}: Swift-XRT exposure")
Image(filename=out / "exposure_by_day.png")

# %% [markdown]
# ## Data and processing
#
# With HEASoft, each observation is downloaded whole and processed by xrtpipeline (to stage 2),
# xrtexpomap, xrtproducts (source circle, background annulus) and ftgrouppha, in parallel, each in its
# own directory with its own parameter files. Without HEASoft the notebook says so and continues from
# the XRT products the archive already holds.

# %%
src_reg, bkg_reg = swift.write_regions(ra, dec, out, src_radius_arcsec, *bkg_radii_arcsec)
status = swift.heasoft_status()
if status == "":
    for row in selected:
        swift.download_observation(swift.swift_obs_uri(row["obsid"], row["start_time"]), data_dir)
    runs = swift.process_observations(list(selected["obsid"]), data_dir, out / "work", ra, dec,
                                      regions=(src_reg, bkg_reg), n_workers=n_workers or None)
    runs.write(out / "xrt_processing.ecsv", overwrite=True)
    for r in runs[runs["status"] == "failed"]: print(f"{r['obsid']}: {r['failed_task']} failed\n{r['log'][-800:]}")
    ok = runs[runs["status"] == "ok"]
    pha_files, images = [Path(p) for p in ok["grouped"]], [Path(p) for p in ok["image"]]
    obsids = list(ok["obsid"])
else:
    print(status)
    pha_files, images, obsids = [], [], []
    for row in selected:
        files = swift.download_observation(swift.swift_obs_uri(row["obsid"], row["start_time"]), data_dir,
                                           subdirs=("xrt/products",))
        pha = [p for p in files if p.name.endswith(("sr.pha", "sr_grp.pha", "sr.pha.gz"))]
        if not pha: print(f"{row['obsid']}: no source spectrum among the archive products"); continue
        swift.fetch_response(pha[0])   # the RMF comes from CALDB
        pha_files.append(pha[0]); obsids.append(row["obsid"])
        images += [p for p in files if "_sk.img" in p.name]
print(f"{len(pha_files)} spectra ready")

# %% [markdown]
# ## Images
#
# The source in every selected observation, titled with its day since discovery:

# %%
day_of = dict(zip(obs["obsid"], np.asarray(obs["day"], float)))
# what each observation's own files say: the demo archive's simulated spectra and images carry MWNBDEMO
note_of = {o: stand_in_note(p) for o, p in zip(obsids, pha_files)}
label = {o: f"{o}  day {day_of[o]:.1f}" + ("\nstand-in (simulated)" if note_of[o] else "") for o in obsids}
if any(note_of.values()): print("stand-in data:", "; ".join(sorted(set(filter(None, note_of.values())))))
if images:
    titles = [label[o] for o in obsids]
    swift.plot_image_grid(images, ra, dec, titles=titles, path=out / "xrt_images.png")
    display(Image(filename=out / "xrt_images.png"))
else: print("no sky images available")

# %% [markdown]
# ## Joint spectral fit
#
# Every spectrum between 0.3 and 7 keV (bad channels ignored), `tbabs*(bbody+bremss)` under cstat,
# nH tied across observations and both temperatures and norms free per observation. The engine is
# PyXspec when installed, otherwise Sherpa with the XSPEC model library.

# %%
fit = spectra.fit_spectra(pha_files, model, tie=tie, stat="cstat", band=tuple(band), engine=engine, start=start)
fit["day"] = [day_of[o] for o in obsids]
fit["day"].unit = "d"
paths = spectra.save_fit_results(fit, out, stem="xrt_fit", titles=[label[o] for o in obsids])
print(f"engine: {fit.meta['engine']}  (fit {fit.meta['fit_seconds']:.1f} s)")
print(spectra.format_fit(fit).splitlines()[0])
fit["obsid", "day", "tbabs.nH", "bbody.kT", "bbody.kT_lo", "bbody.kT_hi", "bremss.kT", "bremss.kT_lo", "bremss.kT_hi", "flux"]

# %%
Image(filename=paths["spectra_plot"]) if "spectra_plot" in paths else print("(PyXspec: plot with xspec.Plot)")

# %% [markdown]
# ## Evolution through the supersoft phase

# %%
spectra.plot_parameter_evolution(fit, "day", out / "xrt_parameter_evolution.png")
if any(note_of.values()): print("fitted to stand-in spectra:", "; ".join(sorted(set(filter(None, note_of.values())))))
Image(filename=out / "xrt_parameter_evolution.png")

# %% [markdown]
# ## Summary

# %%
nH, lo, hi = (float(np.asarray(fit[c])[0]) for c in ("tbabs.nH", "tbabs.nH_lo", "tbabs.nH_hi"))
print(f"{target}: {len(fit)} spectra, engine {fit.meta['engine']}")
print(f"nH = {nH:.4f} [{lo:.4f}, {hi:.4f}] x 1e22 cm^-2 (published 0.1364)")
for c, pub in (("bbody.kT", 0.0469), ("bremss.kT", 1.434)):
    if c in fit.colnames:
        print(f"{c}: {np.min(fit[c]):.4g} - {np.max(fit[c]):.4g} keV over the observations (published {pub})")
print("products:", ", ".join(sorted(p.name for p in out.iterdir() if p.is_file())))
