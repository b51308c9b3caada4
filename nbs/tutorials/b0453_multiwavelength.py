# %% [markdown]
# # B0453-685: Fermi-LAT and Chandra
#
# > The composite supernova remnant B0453-685 in the Large Magellanic Cloud: its gamma-ray spectrum from Fermi-LAT (Eagle et al. 2023, ApJ 945, 4) beside the Chandra view of its pulsar wind nebula, and their combined SED.

# %% [markdown]
# ## Learning goals
#
# By the end of this tutorial you will be able to:
#
# - fetch LAT photons from the FSSC LAT data server and stream the mission's spacecraft file, and write the fermipy
#   configuration of a published analysis with every input checked before the long steps start;
# - run a LAT binned likelihood (fit, localisation, spectral-model comparison, flux points, TS map, light curve) as a
#   checkpointed job that survives an interrupted notebook, with fermipy or with gammapy;
# - make a Chandra soft/medium/hard image, detect its point sources, find their Gaia DR3 and 2MASS counterparts, and fit
#   the pulsar wind nebula's X-ray spectrum;
# - put radio, X-ray and gamma-ray points with their provenance into one SED and compare the LAT results with the paper.
#
# ## Introduction
#
# B0453-685 is a composite remnant: a shell and a pulsar wind nebula (PWN). Eagle et al. (2023) found its GeV counterpart
# with the LAT and modelled the nebula's emission from radio to gamma rays. This notebook follows their steps:
#
# 1. LAT photons from the FSSC LAT data server (10 deg cone, MET 239557417-599544005, 300 MeV-2 TeV),
#    and the mission spacecraft file streamed from S3;
# 2. the fermipy configuration of the published analysis, with its inputs checked before any long step;
# 3. the ROI model: the PWN as a new point source on the 4FGL-DR2 sources and LMC templates;
# 4. the binned likelihood: fit and localisation, power law vs log-parabola vs cut-off power law, flux points,
#    counts/model/residual and TS maps over the ROI, a yearly light curve; fermipy when the Fermi ScienceTools are
#    installed, gammapy on ScienceTools products otherwise (every fitted value with its error in `lat_fit/*.ecsv`);
# 5. Chandra ObsID 1990: a soft/medium/hard RGB image, point-source detection, a quick spectrum;
# 6. Gaia DR3 and 2MASS counterparts of the X-ray sources, the PWN and "Src 2" chosen by position, the PWN's X-ray spectrum;
# 7. the combined SED, and 8. this run beside Eagle et al. (2023) in `b0453_vs_eagle2023.ecsv`.
#
# The target is the pulsar wind nebula at (73.408, -68.489) deg, where HEASARC's published successor of this tutorial
# (HEASARC/heasarc-tutorials, cxc-fermi-irsa-mass_source_analysis) adds its LAT point source; the first draft used
# (73.39, -68.49), 24 arcsec away, which the successor keeps only as the ROI centre.
#
# The hard part is the LAT analysis: its live run takes hours, so it runs as a job in its own process that checkpoints
# every stage; running the notebook again resumes it instead of starting from zero.
#
# ### Inputs
#
# - The target's name and position (ICRS degrees), the ROI size, the Chandra ObsID and energy bands, the counterpart
#   radius (the `parameters` cell); `lat_maps_dir` for a live gammapy run on ScienceTools products.
# - The FSSC LAT data server (photons), the spacecraft file and LMC templates (FSSC, S3), the 4FGL-DR2 catalog and the
#   Galactic/isotropic diffuse models (FSSC); Chandra ObsID 1990 (the VO registry, HEASARC SIA and DataLink, the
#   `nasa-heasarc` bucket) and the Chandra Source Catalog's per-detection spectra; Gaia DR3 (ESA TAP), 2MASS (IRSA TAP),
#   GALEX and HSC (MAST); the WMAP K-band map (`nasa-lambda` bucket).
#
# ### Outputs
#
# Under `out_dir`, every figure saved as PNG and shown from that file:
#
# - `lat/`: the photons, spacecraft file, `config.yaml` (fermipy) and `roi_sources.ecsv` (the ROI model);
# - `lat_fit/`: fitted values with errors (`lat_target.ecsv`, `lat_parameters.ecsv`, `lat_spectral_models.ecsv`), flux points
#   (`lat_sed.ecsv`/`.png`), counts/model/residual maps (`lat_maps.fits`/`.png`), the TS map (`lat_tsmap.fits`/`.png`)
#   and the light curve (`lat_lightcurve.ecsv`/`.png`);
# - Chandra: `chandra_rgb_sources.png`, `chandra_image.png`, `chandra_sources.ecsv`/`.reg`, the brightest source's spectrum,
#   `chandra_sources_counterparts.ecsv` (Gaia, 2MASS, GALEX, HSC), `xray_spectral_fit.ecsv`;
# - WMAP: `wmap_*_mollview.png`, `wmap_*_I_cutout.png`; the SED: `sed.ecsv`, `sed_fit_parameters.ecsv`, `sed_fit.png`;
# - `b0453_vs_eagle2023.ecsv` and `engines.ecsv` (which engine ran each step).
#
# ### Runtime
#
# As of 2026-12-07 the local run (`mwnb run B0453-685 --archive local`, the demo archive on 127.0.0.1, gammapy on the
# stand-in LAT maps) took 94 s (1 min 36 s wall clock, 0.54 GB peak memory) on a 2-core, 24 GB machine shared with other jobs; the LAT job is about
# a minute of it. A live run has not been
# timed here (no machine of this project reaches the archives). What is known: the photon query and the 1 GB spacecraft
# file depend on the LAT data server and the network, and the fermipy analysis of the published configuration (10 years,
# 300 MeV-2 TeV, a 10 deg ROI: `gtltcube` alone, then the fit, SED, TS map and yearly light curve) takes **hours**; the
# notebook's cell limit stops the wait before that, and running the notebook again resumes the job after its last finished
# stage. This runtime is heavily dependent on archive servers, which means runtime will vary for users.
#
# ### Stand-ins in local mode
#
# **With `archive = "local"`** the services are the offline demo archive and the data are labelled
# stand-ins (`MWNBDEMO` in every header), **not B0453-685**: LAT = real >10 GeV Galactic-Centre data (stand-in target
# PSR J1809-2332), Chandra = real M82 events (ObsID 10027) and the G21.5-0.9 image (ObsID 1838), the PWN spectrum = a real
# Swift-XRT spectrum, WMAP K band = the real W-band map. The numbers below then describe those fields and check the
# machinery, not the science of B0453-685. Every figure title says so, and the last cell lists every stand-in product
# from its own label.
#
# ### References
#
# - Eagle, J., et al. 2023, ApJ, 945, 4: the LAT and multiwavelength study this notebook reproduces
#   (https://ui.adsabs.harvard.edu/abs/2023ApJ...945....4E).
# - HEASARC tutorials, `tutorials/use_cases/cxc-fermi-irsa-mass_source_analysis` (HEASARC/heasarc-tutorials, branch
#   cxc-fermi-irsa-mass_source_analysis, commit afba669): the published successor this notebook is compared with.
# - Abdollahi, S., et al. 2020, ApJS, 247, 33 (4FGL) and Ballet, J., et al. 2020, arXiv:2005.11208 (4FGL-DR2);
#   Wood, M., et al. 2017, Proc. ICRC 35, 824 (fermipy); Donath, A., et al. 2023, A&A, 678, A157 (gammapy).
# - Evans, I. N., et al. 2010, ApJS, 189, 37 and 2024, ApJS, 274, 22 (the Chandra Source Catalog).
#
# *Authors: the mwnb developers. Last run and checked: 2026-12-07.*

# %% tags=["parameters"]
target = "B0453-685"
ra = 73.408                 # deg (J2000): the PWN, as HEASARC's published successor places it (the draft used 73.39, -68.49)
dec = -68.489
roi_deg = 10.0              # LAT cone radius and ROI width, deg
obsid = 1990                # Chandra ACIS-I observation of B0453-685
bands = {"soft": (0.5, 1.2), "medium": (1.2, 2.0), "hard": (2.0, 7.0)}   # keV
binsize = 2.0               # Chandra sky pixels per image pixel
match_radius_arcsec = 2.0   # counterpart search radius
paper_values_file = ""      # ECSV of Eagle et al. (2023) values you read (quantity, value, error, unit, reference): fills section 8
radio_literature_file = ""  # ECSV of published radio flux densities (frequency, flux_density, flux_density_err, ul, ul_cl, region, instrument, reference)
lat_maps_dir = ""           # live mode without fermipy: gtbin/gtexpcube2/gtpsf/model-cube files (ccube.fits, bexpmap.fits, psf.fits, bkg_cube.fits)
archive = "auto"            # "live", "local" or "auto" (conf.archive / MWNB_ARCHIVE)
out_dir = "mwnb_products"

# %%
import warnings
from pathlib import Path
import numpy as np
from IPython.display import display
import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from mwnb.cloud import open_fits
from mwnb.provenance import archive_note, label_fits, label_table, show_figure
from mwnb.demo.archive import use_archive
from mwnb.config import conf
from mwnb import fermi, chandra, xray_images, catalogs
from mwnb.errors import MissingInputError, EngineUnavailableError

la = use_archive(archive, content=("crab", "crossmatch", "fermi", "wmap"))   # the demo archive loads only what this tutorial reads
local = la is not None
if local:
    from mwnb.demo.fermi import DEMO_BANNER, lat_demo_uris
    print(DEMO_BANNER)
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
lat_dir = out / "lat"; lat_dir.mkdir(exist_ok=True)
engines = {}

# %% [markdown]
# ## 1. LAT photons and the spacecraft file
#
# The query is posted to `conf.fermi_lat_server`, the results page polled (every
# `conf.lat_poll_interval` s, growing, up to `conf.lat_poll_timeout` s) and the files downloaded once:
# a second run finds `lat_query.json` and the files, and asks nothing.

# %%
lat_files = fermi.fetch_lat_data(ra, dec, lat_dir, radius=roi_deg, interval=1.0 if local else None)
for p in lat_files["photon"]: print(p.name, p.stat().st_size, "bytes")

# %% [markdown]
# The mission-long spacecraft file (about 1 GB) is streamed to disk by `mwnb.cloud.download` with a
# progress bar. The demo archive has no spacecraft file, so in local mode the same call streams the
# stand-in LAT event object instead, to show the mechanism.

# %%
sc_uri = lat_demo_uris()["events"] if local else fermi.SPACECRAFT_URI
sc_file = fermi.fetch_spacecraft_file(lat_dir, uri=sc_uri)
print(sc_file.name, sc_file.stat().st_size, "bytes")

# %% [markdown]
# ## 2. fermipy configuration
#
# The values of the published analysis: ROI 10 deg, 0.1 deg pixels, 10 bins per decade, zenith < 100
# deg, SOURCE class (evclass 128, evtype 3), P8R3_SOURCE_V3 with energy dispersion, gll_iem_v07 and
# iso_P8R3_SOURCE_V3_v1, the 4FGL-DR2 catalog and its extended-source templates (the LMC components,
# e.g. LMC-FarWest, 4FGL J0500.9-6945e, 1.4 deg away). The ROI is centred on `ra`/`dec`: B0453-685 is
# not a 4FGL source, so fermipy could not look its name up; the pulsar wind nebula is added to the model
# as a point source with a free power law. Input paths inside `lat/` are written relative to it and
# fermipy runs there, so the result folder can be moved. With the Fermi ScienceTools present (live), the diffuse models are
# downloaded from where FSSC publishes them.

# %%
# names relative to lat/ (fermipy runs there): the result folder can move, nothing points into the run's temporary folder
(lat_dir / "events.txt").write_text("\n".join(p.name for p in lat_files["photon"]) + "\n")
if not local and fermi.lat_engine() == "fermipy":
    fermi.fetch_fermi_diffuse(lat_dir)   # gll_iem_v07.fits (~0.5 GB) and the isotropic spectrum, once
config = fermi.fermipy_config(target, ra, dec, evfile="events.txt", scfile=sc_file.name, roiwidth=roi_deg,
                              outdir="fermipy")
config_path = fermi.write_fermipy_config(config, lat_dir / "config.yaml")
print(config_path.read_text())

# %% [markdown]
# Every input file must be there before the likelihood starts; a missing one is named with where to
# get it.

# %%
import yaml
try:
    fermi.check_fermipy_inputs(yaml.safe_load(config_path.read_text()), lat_dir, cwd=lat_dir)   # by fermipy's rules, from lat/ where fermipy runs
    inputs_ok = True
except MissingInputError as e:
    inputs_ok = False
    print("fermipy inputs incomplete:", e)

# %% [markdown]
# ## 3. The ROI model
#
# The target is a new point source at the PWN position on top of the 4FGL-DR2 model of the region: the point sources of
# the ROI and the LMC extended sources with their templates (the catalog and template folder the fermipy configuration
# names). This step needs no LAT data and always runs; it is the model both engines fit.

# %%
written = yaml.safe_load(config_path.read_text())
catalog, extdir = written["model"]["catalogs"][0], written["model"]["extdir"]
roi_models, roi_sources = fermi.lat_roi_models(catalog, target, SkyCoord(ra, dec, unit="deg"), width=roi_deg, extdirs=[extdir])
roi_sources.write(lat_dir / "roi_sources.ecsv", overwrite=True)
print(f"{len(roi_sources) - 1} catalog sources of {Path(catalog).name} in the ROI (+1 deg); extended with templates:",
      ", ".join(f"{r['name']} ({r['template']})" for r in roi_sources if r["spatial"] == "template"))
roi_sources[:6]

# %% [markdown]
# ## 4. Likelihood: fit, localisation, spectral models, SED, maps, light curve
#
# fermipy when the Fermi ScienceTools are installed; otherwise gammapy on ScienceTools products given in `lat_maps_dir`
# (counts cube, exposure cube, PSF, diffuse background or diffuse models). With neither, this step stops with a message
# saying what is needed and where to get it, and the rest of the notebook goes on.
#
# The analysis runs as a **job in its own process**, checkpointed after every stage (`lat_fit/job/lat_job.json` lists the
# stages done; fermipy also writes its own `write_roi` checkpoints): the first cell starts it and returns, the next one
# shows its progress and waits for it. A live analysis takes hours (`gtltcube`); if the wait ends first, or the run is
# stopped, run the notebook again: the job resumes after its last finished stage instead of starting from zero.
#
# Upper limits are 95% one-sided (-2 ln L up by 2.71) for both engines, drawn when TS < 4; a curved spectrum replaces the
# power law when TS_curv >= 9.
#
# **Local mode:** the stand-in is `mwnb.demo.fermi.LAT_STAND_IN`: PSR J1809-2332 in a 5 deg ROI of the Galactic-Centre
# >10 GeV maps, its 4FGL entry left out so that it plays the new source; the maps are converted to ScienceTools format
# with the approximations printed below.

# %%
engine = fermi.lat_engine()
print("LAT likelihood engine available:", engine)
lat_out = (out / "lat_fit").resolve()
job_dir = lat_out / "job"
job = None
if engine == "fermipy" and inputs_ok:
    job = dict(config_path=config_path.resolve(), target=target, engine="fermipy")
elif local:
    from mwnb.demo.fermi import LAT_STAND_IN, lat_demo_products, lat_stand_in_position
    maps = lat_demo_products(lat_dir / "maps", catalog)
    for k, how in maps["approximations"].items(): print(f"  stand-in {k}: {how}")
    job = dict(maps=maps, target=LAT_STAND_IN["name"], position=lat_stand_in_position(), engine="gammapy", catalog=catalog,
               exclude=LAT_STAND_IN["exclude"], free_radius=0.5)
elif lat_maps_dir:
    job = dict(maps=fermi.lat_maps_in(lat_maps_dir), target=target, position=SkyCoord(ra, dec, unit="deg"), engine="gammapy",
               catalog=catalog, extdirs=[extdir])
else:
    print("LAT likelihood not run.", fermi.lat_gammapy_needs())
if job is not None:
    state = fermi.start_lat_job(job_dir, out_dir=lat_out, **job)
    print(f"LAT job {state['status']} (stages done: {state.get('stages_done') or 'none yet'})")

# %%
lat = None
if job is not None:
    state = fermi.poll_lat_job(job_dir, timeout=3000)   # under the notebook's cell limit; the job goes on after it
    print(f"LAT job {state['status']}: stages done {state['stages_done']}" + (f" ({state['error']})" if state.get("error") else ""))
    if state["status"] == "complete":
        lat = fermi.lat_job_result(job_dir)
        fermi.clean_lat_job(job_dir)   # the checkpoints hold this machine's paths and the datasets: the products are written
    else:
        print("Not finished: run the notebook again and the job resumes after its last finished stage.")
if lat is not None:
    engines["LAT likelihood"] = lat["engine"]
    loc = lat["localisation"]
    label = f" ({'stand-in: ' + lat['source'].name if local else target})" if lat["engine"] == "gammapy" else ""
    print(f"engine {lat['engine']}{label}: TS = {lat['ts']:.1f}; position RA {loc['ra']:.3f}, Dec {loc['dec']:.3f} deg, "
          f"95% ellipse {loc['pos_err_semimajor'] * 2.448:.3f} x {loc['pos_err_semiminor'] * 2.448:.3f} deg at {loc['pos_angle']:.0f} deg; "
          f"spectrum: {lat['spectral_model']}")

# %% [markdown]
# The three spectral models fitted to the target, side by side: the curved ones replace the power law only when
# `TS_curv` (twice the log-likelihood gain) reaches 9. Look at `TS_curv` and the photon index: Eagle et al. (2023) found
# the power law sufficient for B0453-685.

# %%
if lat is not None: display(Table.read(lat["files"]["spectral_models"]))

# %% [markdown]
# Counts, the fitted model's counts and the residual significance over the ROI. A good fit leaves residuals
# within about +-3 sigma without structure; a bright spot would be a source the model lacks.

# %%
if lat is not None: show_figure(lat["files"]["maps_png"])

# %% [markdown]
# The TS map of the whole ROI with the target left out of the model: the target should stand out at the cross
# (its fitted position) inside its 95% ellipse, and any other peak above TS = 25 is a source the model lacks.

# %%
if lat is not None: show_figure(lat["files"]["tsmap_png"])

# %% [markdown]
# The flux points in energy bins (the spectral shape fixed at the fit, the normalisation free in each bin); bins
# where TS < 4 are shown as 95% one-sided upper limits. Compare their slope with the fitted photon index.

# %%
if lat is not None:
    display(lat["sed"]["e_ref", "dnde", "dnde_err", "dnde_ul", "ts", "is_ul"])
    show_figure(lat["files"]["sed_png"])

# %% [markdown]
# The yearly light curve: a pulsar wind nebula should be steady, so fluxes scattered beyond their errors would point
# to a variable neighbour or a mis-modelled background rather than to the nebula.

# %%
if lat is not None and "lightcurve_png" in lat["files"]:
    display(lat["lightcurve"]["mjd_start", "mjd_stop", "flux", "flux_err", "flux_ul", "ts", "is_ul"])
    show_figure(lat["files"]["lightcurve_png"])

# %% [markdown]
# ## 5. Chandra ObsID 1990
#
# The image is found through the VO registry's Chandra SIA service and its DataLink `#this` link to
# the S3 copy; the event file next to it by listing the ObsID's `primary/` directory in the bucket.

# %%
cx = chandra.chandra_obsid_files(obsid)
cx["image"] = chandra.find_chandra_image(ra, dec, obsid)
print(cx)
events = xray_images.read_events(cx["events"])
# the data's own label: demo stand-ins carry MWNBDEMO (and MWNBFOR, what they stand in for) in every header
stand_in = (f"stand-in: {events.meta.get('OBJECT')} ObsID {events.meta.get('OBS_ID')} for {events.meta.get('MWNBFOR', target)}"
            if events.meta.get("MWNBDEMO") else "")
print(len(events), "events;", events.meta.get("OBJECT"), "ObsID", events.meta.get("OBS_ID"), f"({stand_in})" if stand_in else "")

# %%
# the image spans the central 99.8% of the events (a few stray events far out would only add empty sky)
x, y = np.asarray(events["x"]), np.asarray(events["y"])
(x0, x1), (y0, y1) = np.percentile(x, [0.1, 99.9]), np.percentile(y, [0.1, 99.9])
size = int(max(x1 - x0, y1 - y0) / binsize) + 1
images, wcs = xray_images.band_images(events, bands=bands, binsize=binsize, center=((x0 + x1) / 2, (y0 + y1) / 2), size=size)
rgb = xray_images.rgb_image(images)
for name, im in images.items(): print(f"{name:7s} {bands[name]} keV: {int(im.sum())} counts")

# %% [markdown]
# Point sources on the broad-band (0.5-7 keV) image: CIAO `wavdetect` when installed, else photutils.

# %%
broad = sum(images.values())
sources = xray_images.detect_sources(broad, wcs)
engines["X-ray source detection"] = sources.meta["engine"]
print(f"{len(sources)} sources (engine: {sources.meta['engine']})")
src_files = xray_images.save_sources(sources, out, inputs=(events.meta,))   # the events' stand-in label travels
sources[:10]

# %% [markdown]
# A quick spectrum of the brightest source (source circle 3", background annulus 6-15").

# %%
b = sources[int(np.argmax(np.asarray(sources["net_counts"], float)))]   # the brightest by net counts, not by row order
bright = SkyCoord(b["ra"], b["dec"])
spec = xray_images.source_spectrum(events, bright)
label_table(spec, events.meta).write(out / "chandra_brightest_spectrum.ecsv", overwrite=True)
xray_images.plot_spectrum(spec, out / "chandra_brightest_spectrum.png",
                      title=f"X{b['id']}: net {spec['net_counts'].sum():.0f} counts" + (f"\n({stand_in})" if stand_in else ""))
show_figure(out / "chandra_brightest_spectrum.png")

# %% [markdown]
# The full-field image of the ObsID, with the same detection.

# %%
if cx["image"]:
    img, iwcs = xray_images.read_image(cx["image"])
    with open_fits(cx["image"]) as h: img_header = h[0].header.copy()   # its own label, if it is a stand-in
    img_sources = xray_images.detect_sources(img, iwcs)
    xray_images.save_sources(img_sources, out, stem="chandra_image_sources", inputs=(img_header,))
    ib = img_sources[int(np.argmax(np.asarray(img_sources["net_counts"], float)))]
    print(f"{len(img_sources)} sources on the full image; brightest (net counts) at {SkyCoord(ib['ra'], ib['dec']).to_string('hmsdms')}")

# %% [markdown]
# ## 6. Counterparts in Gaia DR3 and 2MASS
#
# The X-ray positions are uploaded to the Gaia and IRSA TAP services and matched within
# `match_radius_arcsec`. No counterpart is a valid answer: the table is then empty with a note.
# HST and GALEX are observations at MAST (ObsTAP), listed for the field rather than matched per source.

# %%
cps = chandra.find_counterparts(sources, radius=match_radius_arcsec * u.arcsec)
for name, t in cps.items():
    t.write(out / f"counterparts_{name.replace(' ', '_').lower()}.ecsv", overwrite=True)
    print(f"{name}: {len(t)} counterparts", t.meta.get("note", ""))
centre = SkyCoord(np.mean(sources["ra"]), np.mean(sources["dec"])) if len(sources) else SkyCoord(ra, dec, unit="deg")
mast_obs = catalogs.mast_observations(centre.ra.deg, centre.dec.deg, radius_deg=0.1)
mast_obs.write(out / "mast_hst_galex_observations.ecsv", overwrite=True)
print(f"MAST HST/GALEX: {len(mast_obs)} observations", mast_obs.meta.get("note", ""))

# %%
xray_images.plot_rgb(rgb, wcs, sources=sources, counterparts=cps, path=out / "chandra_rgb_sources.png",
                 title=f"{events.meta.get('OBJECT', target)} ObsID {events.meta.get('OBS_ID', obsid)}: 0.5-1.2 / 1.2-2 / 2-7 keV"
                       + (f"\n({stand_in})" if stand_in else ""))
show_figure(out / "chandra_rgb_sources.png")

# %% [markdown]
# ## 6b. Position errors, chance coincidences, the merged table and "Src 2"
#
# Each X-ray source gets a 95% position error that grows with off-axis angle and shrinks with counts (the
# relation the Chandra Source Catalog uses, plus Chandra's absolute astrometry); counterparts are matched
# within each source's own radius, with the expected number of unrelated stars in that circle. The
# brightest point source other than the PWN is the seed's "Src 2", circled in red on the image.

# %%
src = xray_images.add_position_errors(sources, events.meta)
pwn_id, src2_id = chandra.follow_up_source(src, pwn=None if local else SkyCoord(ra, dec, unit="deg"))   # the stand-in field has no PWN at the target
xray_images.plot_image(broad, wcs, sources=src, highlight=src2_id, highlight_label='"Src 2", the follow-up source', path=out / "chandra_image.png",
                   title=f"{events.meta.get('OBJECT', target)} 0.5-7 keV" + (f"\n({stand_in})" if stand_in else ""))
show_figure(out / "chandra_image.png")
cps_auto = chandra.find_counterparts(src)
chance = chandra.chance_coincidence(src)
merged = chandra.merged_table(src, cps_auto, chance, pwn_id=pwn_id, follow_up_id=src2_id)
merged.write(out / "chandra_sources_counterparts.ecsv", overwrite=True)
print(chandra.follow_up_summary(merged, src2_id)["note"])

# %% [markdown]
# GALEX and Hubble Source Catalog sources per X-ray source (MAST's catalog service, one cone per source with its 95%
# radius), merged into the saved table beside Gaia and 2MASS. The demo archive has no GALEX/HSC rows (nothing is
# invented): locally the columns are there, empty, and the table says why.

# %%
mast_cps = {}
for cat in ("GALEX", "HSC"):
    if local:
        from mwnb.demo.fermi import NO_DEMO_MAST_CATALOG
        t = Table(names=["xray_id", "id", "ra", "dec", "sep", "match_radius"], dtype=[int, str, float, float, float, float])
        t.meta["note"] = NO_DEMO_MAST_CATALOG
    else:
        t = catalogs.mast_source_counterparts(src, cat)
    label_table(t, src).write(out / f"counterparts_{cat.lower()}.ecsv", overwrite=True)
    mast_cps[cat] = t
    print(f"{cat}: {len(t)} counterparts", t.meta.get("note", ""))
merged = label_table(catalogs.add_mast_counterparts(merged, mast_cps), src)
merged.write(out / "chandra_sources_counterparts.ecsv", overwrite=True)
merged["id", "role", "gaia_n", "tmass_n", "galex_n", "hsc_n"][:5]

# %% [markdown]
# The PWN's X-ray spectrum. Live: CIAO `specextract` on the event file (a 40" circle on the nebula, a 60-90" background
# annulus, weighted responses for an extended source) when CIAO is installed. Without CIAO, the same regions are extracted
# from the event list (`chandra.pwn_events_spectrum`): a PI spectrum of the 40" circle and one of the annulus, written as
# OGIP PHA files (EXPOSURE, BACKSCAL from the region areas, the background named by BACKFILE), with the ARF and RMF of the
# Chandra Source Catalog detection nearest the PWN (chosen by position, the separation printed). **That is an
# approximation**: a point-source ARF for an extended region (no weighting over the nebula, no vignetting or chip-edge
# correction); the spectrum file and the fit table say so, with the region. An absorbed power law gives the flux with its
# 90% interval; the region used goes into the fit table and the SED. In the demo archive the same code runs on the stand-in
# events (M82), around the stand-in field's brightest source, with real CSC responses of another detection (ObsID 4938,
# from sherpa's test data): every product says stand-in.

# %%
pwn_position = SkyCoord(ra, dec, unit="deg")
if local:   # the stand-in field has no PWN at the target: the source that took the PWN's role above takes its place
    import sherpa
    p = src[np.asarray(src["id"]) == pwn_id][0]
    pwn_position = SkyCoord(p["ra"], p["dec"])
    csc_dir = Path(sherpa.__file__).parent / "astro/datastack/tests/data"   # real CSC per-detection products in sherpa's test data
    responses = dict(arf=csc_dir / "acisf04938_000N002_r0043_arf3.fits", rmf=csc_dir / "acisf04938_000N002_r0043_rmf3.fits",
                     name="CSC ObsID 4938 region 43 (sherpa test data: stand-in responses)", separation_arcsec=float("nan"))
    s = chandra.pwn_events_spectrum(events, pwn_position, out / "pwn_spectrum", responses=responses)
    for f in (s["arf"], s["rmf"]): label_fits(f, f"stand-in responses for the PWN's: {responses['name']}", keyword="MWNBDEMO")   # the copies beside the spectrum
else:
    from mwnb.cloud import download
    evt = (download(cx["events"], out / "chandra" / str(cx["events"]).rsplit("/", 1)[-1])
           if chandra.specextract_available() else None)   # specextract reads a local event file
    s = chandra.pwn_xray_spectrum(pwn_position, out / "pwn_spectrum", obsid=obsid, events_file=evt, events=events)
print("X-ray spectrum:", s["method"], "|", s["region"])
if s.get("counts") is not None: print(f"{s['counts']} counts in the source circle, {s['bkg_counts']} in the background annulus")
print(s["label"] or "no approximation or stand-in label")
xfit = chandra.fit_source_spectrum(s["pha"], s["arf"], s["rmf"], label=s.get("label", ""), region=s["region"])
xfit.write(out / "xray_spectral_fit.ecsv", overwrite=True)
from mwnb import sed as mwsed
xflux = mwsed.sed_xray_flux(xfit)
print({k: xflux[k] for k in ("e_min_keV", "e_max_keV", "unabsorbed_flux", "unabsorbed_flux_lo", "unabsorbed_flux_hi", "region", "label")})

# %% [markdown]
# ## 6c. WMAP from LAMBDA's cloud copy
#
# The K-band I,Q,U map is read from `s3://nasa-lambda/wmap/...` (LAMBDA's `data/map/` tree on AWS); in the
# demo archive the real W-band map stands in for it (its header says so). At WMAP's resolution the
# aperture holds LMC emission, so the flux density is an upper limit for the nebula.

# %%
from mwnb import wmap
wmap_map = wmap.read_wmap_map(wmap.WMAP_K_IQU_URL)
wmap_flux = wmap.wmap_photometry(wmap_map, ra, dec)
print({k: wmap_flux[k] for k in ("band", "flux", "flux_err", "upper_limit", "note") if k in wmap_flux})
wmap_pngs = wmap.wmap_figures(wmap_map, ra, dec, out, name=target)["files"]   # {figure: PNG path}
for png in wmap_pngs.values(): show_figure(png)

# %% [markdown]
# ## 7. The combined SED and a one-zone PWN model
#
# The WMAP aperture (an upper limit), the X-ray flux with its interval, the LAT flux points (upper limits at their stated
# 95% one-sided level) and the published radio flux densities of `radio_literature_file`, if you give one (none could be
# read in a stored source here; `mwnb.sed.B0453_RADIO_SOURCES` lists the papers that hold them), go into
# one SED table with units and per-point provenance (`mwnb.sed`); stand-in points are labelled as such.

# %%
from mwnb import sed as mwsed
radio_literature = Table.read(radio_literature_file) if radio_literature_file else None   # None: the empty default, with its note
sed_parts = [mwsed.literature_radio_points(radio_literature), mwsed.radio_points(wmap_flux), mwsed.xray_points(xfit)]
if lat is not None:
    sed_parts.append(mwsed.gamma_points(lat["sed"], archive=archive,
                                        stand_in=f"stand-in: LAT points of {lat['source'].name}" if local else None))
mw_sed = mwsed.combine_sed(*sed_parts, target=target, archive=archive)
sed_out = mwsed.sed_products(mw_sed, out)   # sed.ecsv, sed_fit_parameters.ecsv, sed_fit.png (naima one-zone leptonic)
show_figure(out / "sed_fit.png")
print(mw_sed.meta["label"] or "no stand-in points", "|", mw_sed.meta["n_points"], "points, regimes", mw_sed.meta["regimes"])
mw_sed["band", "energy", "flux", "ul", "stand_in", "provenance"]

# %% [markdown]
# ## 8. This run beside Eagle et al. (2023)
#
# The LAT results of this run (TS and significance, photon index, flux, energy range, fitted position) beside the values
# of Eagle et al. (2023, ApJ 945, 4), each with its reference (`mwnb.sed.compare_with_paper`). Only values read in a stored
# copy of the paper are filled in (its abstract); the others are left empty and say so. If you have the paper, write its
# values to a small ECSV (quantity, value, error, unit, reference) and run with `-p paper_values_file=that.ecsv`. In local mode the table holds the stand-in's
# numbers and says that they cannot be compared.

# %%
if lat is not None:
    paper = mwsed.paper_values(paper_values_file) if paper_values_file else mwsed.EAGLE2023
    vs_paper = mwsed.compare_with_paper(lat, paper=paper, stand_in=f"LAT stand-in {lat['source'].name if lat['engine'] == 'gammapy' else ''}" if local else "")
    label_table(vs_paper, lat["sed"]).write(out / "b0453_vs_eagle2023.ecsv", overwrite=True)   # the LAT products' stand-in label, if any
    print(vs_paper.meta["note"], f"| fitted position {vs_paper.meta['offset_from_pwn_arcsec']:.0f} arcsec from the PWN")
    display(vs_paper)
else:
    print("LAT likelihood not run: nothing to compare with Eagle et al. (2023)")

# %% [markdown]
# ## Products and engines

# %%
engines_table = Table(rows=list(engines.items()), names=["step", "engine"])
engines_table.meta["archive"] = archive_note()
engines_table.write(out / "engines.ecsv", overwrite=True)
print(engines_table)
for p in sorted(out.rglob("*")):
    if p.is_file() and p.suffix in (".ecsv", ".png", ".fits", ".reg", ".yaml"): print(p.relative_to(out))

# %% [markdown]
# ## Which products are stand-ins
#
# Read from the products' own labels (`MWNBDEMO`/`MWNBFOR` in each FITS header, the stand-in
# label in each ECSV table's metadata, via `mwnb.provenance.stand_in_of`): on the live archives this list is empty.

# %%
from mwnb.provenance import product_labels

labels = product_labels(out, suffixes=(".ecsv", ".fits", ".pi"))
stand_ins = {p: label for p, label in labels.items() if label}
if stand_ins:
    print(f"{len(stand_ins)} of {len(labels)} FITS/ECSV products are stand-ins, not {target} data:")
    for p, label in stand_ins.items(): print(f"  {p}: {label[:150]}")
else:
    print(f"no stand-ins: every product is {target} data from {archive_note()}")
if local and len(stand_ins) < len(labels):   # what the products do not say themselves
    print(f"the other {len(labels) - len(stand_ins)} products carry no stand-in label of their own, but were made in this run "
          f"from the stand-in inputs above (local demo archive)")
