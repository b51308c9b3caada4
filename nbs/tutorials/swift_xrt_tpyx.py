# %% [markdown]
# # Getting started with Swift-XRT: the supersoft phase of T Pyx
#
# > Find a source's Swift observations in HEASARC's master table, keep those in a window of days
# > after an event, fetch them from the archive's S3 copy, run the XRT tools on each in parallel
# > (PC or WT mode, a grade selection, a pile-up check), and fit all spectra jointly with an absorbed
# > blackbody plus bremsstrahlung: background, residuals, goodness of fit, absorbed and unabsorbed fluxes,
# > luminosity and blackbody radius at the source's distance, an nH-kT contour, the corrected light curve
# > and the evolution of the parameters.
#
# The recurrent nova T Pyx erupted on MJD 55665 (2011 April 14). HEASARC's Swift-XRT tutorial selects the
# 8 observations between days 142 and 149 (2011 September 3-9), when the supersoft source was bright, and
# its joint fit of their spectra gives nH = 0.1364e22 cm^-2, blackbody kT = 0.0469 keV and
# bremsstrahlung kT = 1.434 keV.
#
# Everything below is parameterised: `mwnb run "T Pyx"`, or for another source
# `papermill swift_xrt_tpyx.ipynb out.ipynb -p target NAME -p ra DEG -p dec DEG -p event_mjd MJD ...`.
# Spectral extraction needs HEASoft (xrtpipeline, xrtproducts); without it, live, the notebook finds and
# shows the observations and the archive's own images and then stops at that step, saying how to get
# HEASoft. With `archive = "local"` it runs on the local demo archive: the `swiftmastr` rows are published
# ones, the sky images are stand-ins, and the spectra, their backgrounds and light curves are **simulated**:
# the published fit is the simulation's *input*, folded through a real Swift-XRT RMF (relabelled as the 2011
# epoch) and the ARF of another source, the background is the XRT-measured cosmic X-ray background only,
# and everything is served from a demo-only bucket (`mwnb-demo`). Every product made from them says
# "SIMULATED" in its title and `MWNBDEMO` in its metadata, and the fit is compared with the simulation
# inputs, not with "published" values (see `mwnb.demo.swift`).

# %% tags=["parameters"]
target = "T Pyx"
ra = 136.17292              # deg, ICRS
dec = -32.37986             # deg, ICRS
event_mjd = 55665.0         # discovery of the 2011 outburst
distance_kpc = 4.8          # T Pyx: 4.8 +- 0.5 kpc from light echoes, Sokoloski et al. 2013, ApJL 770, L33 (arXiv:1305.5245)
window_start_day = 142.0    # keep observations between these days after the event (HEASARC's selection)
window_end_day = 149.0
search_radius_arcmin = 12.0
mode = "PC"                 # XRT mode: PC (photon counting) or WT (windowed timing)
grade = ""                  # grade selection: "" = the mode's default (PC 0-12, WT 0-2); "0" for soft/absorbed sources
check_pileup = True         # measure the count rate and excise the PSF core when it piles up
src_radius_arcsec = 180.0   # source circle (PC)
bkg_radii_arcsec = [240.0, 390.0]  # background annulus (PC)
model = "tbabs*(bbody+bremss)"
tie = ["nH"]                # shared by all observations; the rest is free per observation
band = [0.3, 7.0]           # keV, fitted
flux_band = [0.3, 10.0]     # keV, fluxes and luminosities
start = {"bbody.kT": 0.1, "bremss.kT": 3.0}  # starting values (keV)
errors = "covar"            # covar: 90% from the curvature (seconds) | conf: profile intervals (the library default; >20 min for 8 spectra on a loaded 2-core machine)
contour = ["tbabs.nH", "bbody.kT"]   # joint confidence region of these two, for the first observation
contour_grid = 10           # points per axis
engine = "auto"             # auto | xspec (PyXspec) | sherpa
n_workers = 0               # processes for the XRT tools (0: conf.n_workers)
archive = "auto"            # live | local | auto (MWNB_ARCHIVE)
out_dir = "mwnb_products"

# %%
from pathlib import Path
import numpy as np
from IPython.display import Image, display
from astropy.table import Table
from mwnb.config import archive_note
from mwnb.demo.archive import use_archive
from mwnb.errors import BadParameterError
from mwnb.targets import check_coordinates
from mwnb import swift, spectra

la = use_archive(archive)
ra, dec = check_coordinates(ra, dec)
mode = swift.xrt_mode(mode)
grade = swift.xrt_grade(grade or None, mode)
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
data_dir = out / "data"
print(f"{target} at ({ra:.5f}, {dec:.5f}), d = {distance_kpc} kpc; XRT {mode} mode, grades {grade}; archive: {archive_note()}")

# %% [markdown]
# ## Observations
#
# HEASARC's Swift master table, searched around the target and sorted by start time:

# %%
catalog = swift.swift_master_catalog(keywords="swift")
obs = swift.query_swift_observations(ra, dec, search_radius_arcmin, catalog=catalog)
if la is not None and "MWNBDEMO" not in obs.meta:
    # local demo archive: its swiftmastr is demo content, labelled in the served table's meta (a TAP answer
    # carries only the published columns)
    from mwnb.demo.swift import tpyx_master_table
    obs.meta["MWNBDEMO"] = tpyx_master_table().meta["MWNBDEMO"]
swift.select_window(swift.days_since(obs, event_mjd), window_start_day, window_end_day)
obs.write(out / "swift_observations.ecsv", overwrite=True)
selected = obs[obs["selected"]]
print(f"{catalog}: {len(obs)} observations, {len(selected)} between days {window_start_day} and {window_end_day}")
if obs.meta.get("MWNBDEMO"): print(obs.meta["MWNBDEMO"])
selected["obsid", "name", "start_time", "day", "xrt_exposure"]

# %%
table_note = " (demo table: published rows only)" if obs.meta.get("MWNBDEMO") else ""
swift.plot_exposure_by_day(obs, out / "exposure_by_day.png", title=f"{target}: Swift-XRT exposure{table_note}")
Image(filename=out / "exposure_by_day.png")


# %% [markdown]
# ## The archive's images
#
# The archive keeps each observation's own XRT products (sky image, exposure map) in `xrt/products/`;
# they need no HEASoft. The source in every selected observation, titled with its day since discovery:

# %%
def stand_in_note(path) -> str:
    "The file's own stand-in label (MWNBDEMO in any of its headers); '' for genuine data."
    from astropy.io import fits
    with fits.open(path) as h:
        return next((str(x.header["MWNBDEMO"]) for x in h if x.header.get("MWNBDEMO")), "")

day_of = dict(zip(obs["obsid"], np.asarray(obs["day"], float)))
images = {}
for row in selected:
    files = swift.download_observation(swift.swift_obs_uri(row["obsid"], row["start_time"]), data_dir,
                                       subdirs=("xrt/products",))
    sky = [p for p in files if p.name.endswith(("xpc_sk.img.gz", "xpc_sk.img"))]
    if sky: images[row["obsid"]] = sky[0]
    else: print(f"{row['obsid']}: no PC sky image among the archive products")
if images:
    image_note = {o: stand_in_note(p) for o, p in images.items()}
    titles = [f"{o}  day {day_of[o]:.1f}" + ("\nstand-in (simulated)" if image_note[o] else "") for o in images]
    if any(image_note.values()): print("stand-in images:", "; ".join(sorted(set(filter(None, image_note.values())))))
    swift.plot_image_grid(list(images.values()), ra, dec, titles=titles, path=out / "xrt_images.png")
    display(Image(filename=out / "xrt_images.png"))
else: print("no sky images available")

# %% [markdown]
# ## Spectra, backgrounds and light curves
#
# With HEASoft, each observation is downloaded whole and processed by xrtpipeline (to stage 2, in the chosen
# mode, with the grade selection), xrtexpomap and xrtproducts (source and background regions, with the
# attitude file its events name in `ATTFLAG` and the housekeeping file, `correctlc=yes` for a light curve
# corrected for the PSF outside the region, vignetting and bad columns) and ftgrouppha, in parallel, each in
# its own directory with its own parameter files. Before xrtproducts, the count rate in the source circle is
# judged for pile-up (UKSSDC: PC above ~0.5 count/s, WT above ~100 count/s); a piled-up source gets an
# annulus (PC) or a box without its centre (WT), and the table says how much was excised. The RMF is
# CALDB's choice for the observation's date, mode and grade. Without HEASoft there is no honest substitute
# live: the archive holds no extracted spectra, so this step stops and says how to get HEASoft. On the local
# demo archive the simulated products come from the demo-only bucket instead.

# %%
status = swift.heasoft_status()
if status == "":
    for row in selected:
        swift.download_observation(swift.swift_obs_uri(row["obsid"], row["start_time"]), data_dir)
    regions = swift.write_regions(ra, dec, out, src_radius_arcsec, *bkg_radii_arcsec) if mode == "PC" else None
    runs = swift.process_observations(list(selected["obsid"]), data_dir, out / "work", ra, dec, regions=regions,
                                      n_workers=n_workers or None, mode=mode, grade=grade, check_pileup=check_pileup,
                                      src_radius=src_radius_arcsec, bkg_radii=tuple(bkg_radii_arcsec))
    runs.write(out / "xrt_processing.ecsv", overwrite=True)
    for r in runs[runs["status"] == "failed"]: print(f"{r['obsid']}: {r['failed_task']} failed\n{r['log'][-800:]}")
    ok = runs[runs["status"] == "ok"]
    pha_files, obsids = [Path(p) for p in ok["grouped"]], list(ok["obsid"])
    lightcurves = {r["obsid"]: Path(r["lightcurve_corr"]) for r in ok if r["lightcurve_corr"]}
    for r in ok: print(f"{r['obsid']}: {r['pileup_note']}")
elif la is not None:
    print(status)
    if (mode, grade) != ("PC", "0-12"):
        raise BadParameterError(f"the local demo archive holds simulated PC grade 0-12 spectra only, not {mode} grades "
                                f"{grade}; use mode='PC', grade='' here (the other choices need HEASoft)")
    from mwnb.demo.swift import fetch_demo_spectra
    print("Local demo archive: using its SIMULATED spectra, backgrounds and light curves from the demo-only bucket mwnb-demo")
    pha_files = fetch_demo_spectra(list(selected["obsid"]), data_dir / "demo_spectra")
    for p in pha_files: swift.fetch_response(p)   # the RMF comes from (the demo archive's) CALDB
    obsids = [p.parent.name for p in pha_files]
    lightcurves = {o: swift.xrt_product_names(o, p.parent)["lightcurve_corr"] for o, p in zip(obsids, pha_files)}
else:
    swift.require_heasoft("spectral extraction")   # EngineUnavailableError: says how to get HEASoft
note_of = {o: stand_in_note(p) for o, p in zip(obsids, pha_files)}
simulated = any(note_of.values())
spectra_note = "; ".join(sorted(set(filter(None, note_of.values()))))
sim_tag = " - SIMULATED (demo)" if simulated else ""
label = {o: f"{o}  day {day_of[o]:.1f}" + ("\nSIMULATED" if note_of[o] else "") for o in obsids}
print(f"{len(pha_files)} spectra ready" + (f" (stand-ins: {spectra_note})" if spectra_note else ""))

# %% [markdown]
# ## Light curve
#
# The mean corrected count rate of each observation against the day since discovery (1-sigma errors), and
# the pile-up verdict for each rate. On the demo archive the rates come from the simulated light curves,
# made from the same simulated counts as the spectra; the simulated spectra themselves have no pile-up, so
# a rate above the threshold there is a statement about what the live extraction would do.

# %%
rates = swift.count_rates_by_day(lightcurves, day_of)
rates["pileup"] = [swift.pileup_check(r, mode)["piled"] for r in rates["rate"]]
rates.write(out / "xrt_count_rates.ecsv", overwrite=True)
for r in rates: print(f"{r['obsid']}  day {r['day']:.2f}: {swift.pileup_check(r['rate'], mode)['note']}")
swift.plot_count_rate_by_day(rates, out / "xrt_count_rate.png", title=f"{target}: Swift-XRT {mode}{sim_tag}")
Image(filename=out / "xrt_count_rate.png")

# %% [markdown]
# ## Joint spectral fit
#
# Every spectrum between 0.3 and 7 keV (bad channels ignored), `tbabs*(bbody+bremss)`, nH tied across
# observations and both temperatures and norms free per observation. With a background spectrum the cstat
# statistic becomes W-stat (the background is profiled, as XSPEC does). The engine is PyXspec when installed,
# otherwise Sherpa with the XSPEC model library. Intervals are 90%: from the fit's curvature here (`errors = "covar"`;
# `"conf"` gives profile intervals, much slower) for the parameters; for fluxes, luminosities and radii the 5th-95th percentiles of parameter draws. Goodness of fit
# is the fraction of Poisson simulations of the best fit whose statistic is at least the observed one.

# %%
fit = spectra.fit_spectra(pha_files, model, tie=tie, stat="cstat", band=tuple(band), engine=engine, start=start,
                          errors=errors, flux_band=tuple(flux_band), distance_kpc=distance_kpc)
fit["day"] = [day_of[o] for o in obsids]
fit["day"].unit = "d"
fit.meta.update(target=target, xrt_mode=mode, xrt_grade=grade, distance_kpc=distance_kpc,
                distance_source="Sokoloski et al. 2013, ApJL 770, L33" if target == "T Pyx" else "tutorial parameter")
if simulated: fit.meta["MWNBDEMO"] = f"fitted to SIMULATED spectra: {spectra_note}"
paths = spectra.save_fit_results(fit, out, stem="xrt_fit", titles=[label[o] for o in obsids])
print(f"engine: {fit.meta['engine']}  (fit {fit.meta['fit_seconds']:.1f} s, errors {fit.meta['error_seconds'] or 0:.1f} s), "
      f"statistic {fit.meta.get('stat_used', fit.meta['stat'])}: {float(fit['stat'][0]):.1f} / {int(fit['dof'][0])} dof")
cols = [c for c in ("obsid", "day", "tbabs.nH", "bbody.kT", "bbody.kT_lo", "bbody.kT_hi", "bremss.kT", "bremss.kT_lo",
                    "bremss.kT_hi", "background_counts", "gof_p") if c in fit.colnames]
fit[cols]

# %% [markdown]
# Counts, folded model and background of every spectrum, with residuals (data - model) / sqrt(model) below:

# %%
Image(filename=paths["spectra_plot"]) if "spectra_plot" in paths else print("(PyXspec: plot with xspec.Plot)")


# %% [markdown]
# ## Fluxes, luminosity and blackbody radius
#
# Absorbed and unabsorbed (tbabs removed) fluxes in the flux band, the unabsorbed luminosity and the
# blackbody radius at the distance parameter, each with its 90% interval:

# %%
def interval(c): return [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" for v, lo, hi in zip(*(np.asarray(fit[k], float) for k in (c, f"{c}_lo", f"{c}_hi")))]
derived = [c for c in ("flux", "unabsorbed_flux", "bbody_unabsorbed_flux", "bremss_unabsorbed_flux", "luminosity", "bbody_radius")
           if c in fit.colnames and f"{c}_lo" in fit.colnames]
fluxes = Table({"obsid": obsids, "day": np.round(fit["day"], 2), **{c: interval(c) for c in derived}})
print(f"fluxes {flux_band[0]}-{flux_band[1]} keV in {fit[derived[0]].unit}; luminosity at {distance_kpc} kpc"
      + (" - from SIMULATED spectra" if simulated else ""))
fluxes

# %% [markdown]
# ## nH - kT contour
#
# The joint 68/90/99% regions of the two parameters for the first observation (every other free parameter
# refitted at each grid point): nH and the blackbody temperature are correlated, as expected for a
# supersoft source whose Wien tail sits where the absorption bites.

# %%
if hasattr(fit, "joint_fit"):
    region = spectra.confidence_contour(fit, *contour, spectrum=0, n=contour_grid)
    spectra.plot_confidence_contour(region, out / "xrt_contour.png", title=f"{target} {obsids[0]}{sim_tag}\n{contour[0]} vs {contour[1]}")
    display(Image(filename=out / "xrt_contour.png"))
else: print("(PyXspec: use xspec.Fit.steppar for the contour)")

# %% [markdown]
# ## Evolution through the supersoft phase

# %%
spectra.plot_parameter_evolution(fit, "day", out / "xrt_parameter_evolution.png", title=f"{target}{sim_tag}")
if spectra_note: print("fitted to stand-in spectra:", spectra_note)
Image(filename=out / "xrt_parameter_evolution.png")

# %% [markdown]
# ## Summary
#
# On the local demo archive the spectra were simulated from the published joint fit, so the comparison is
# with the **simulation inputs** (read back from the spectra's own `MWNBPARn` keywords): it checks that the
# chain recovers what went in, not that T Pyx has these values. Live, the comparison is with HEASARC's
# published fit.

# %%
nH, lo, hi = (float(np.asarray(fit[c])[0]) for c in ("tbabs.nH", "tbabs.nH_lo", "tbabs.nH_hi"))
if simulated:
    from mwnb.demo.swift import simulation_inputs
    reference, ref_word = simulation_inputs(pha_files[0]), "simulation input"
else:
    reference, ref_word = {"tbabs.nH": 0.1364, "bbody.kT": 0.0469, "bremss.kT": 1.434}, "published (HEASARC Swift tutorial)"
print(f"{target}: {len(fit)} spectra, engine {fit.meta['engine']}" + (" - SIMULATED spectra" if simulated else ""))
print(f"nH = {nH:.4f} [{lo:.4f}, {hi:.4f}] x 1e22 cm^-2 ({ref_word} {reference['tbabs.nH']:.4g})")
for c in ("bbody.kT", "bremss.kT"):
    if c in fit.colnames:
        print(f"{c}: {np.min(fit[c]):.4g} - {np.max(fit[c]):.4g} keV over the observations ({ref_word} {reference[c]:.4g})")
print("products:", ", ".join(sorted(p.name for p in out.iterdir() if p.is_file())))
