# %% [markdown]
# # B0453-685: Fermi-LAT and Chandra
#
# The composite supernova remnant B0453-685 in the Large Magellanic Cloud: its gamma-ray spectrum
# from Fermi-LAT (Eagle et al. 2023, ApJ 945, 4) beside the Chandra view of its pulsar wind nebula.
#
# 1. LAT photons from the FSSC LAT data server (10 deg cone, MET 239557417-599544005, 300 MeV-2 TeV),
#    and the mission spacecraft file streamed from S3;
# 2. the fermipy configuration of the published analysis, with its inputs checked before any long step;
# 3. the ROI model: the PWN as a new point source on the 4FGL-DR2 sources and LMC templates;
# 4. the binned likelihood: fit and localisation, power law vs log-parabola vs cut-off power law, flux points,
#    counts/model/residual and TS maps over the ROI, a yearly light curve; fermipy when the Fermi ScienceTools are
#    installed, gammapy on ScienceTools products otherwise (every fitted value with its error in `lat_fit/*.ecsv`);
# 5. Chandra ObsID 1990: a soft/medium/hard RGB image, point-source detection, a quick spectrum;
# 6. Gaia DR3 and 2MASS counterparts of the X-ray sources.
#
# Every product goes under `out_dir`, every figure is saved there as PNG and shown from that file, and the
# engines that ran are written to `engines.ecsv`.
#
# **With `archive = "local"`** the services are the offline demo archive and the data are labelled
# stand-ins (`MWNBDEMO` in every header), **not B0453-685**: LAT = real >10 GeV Galactic-Centre data (stand-in target PSR J1809-2332),
# Chandra = real M82 events (ObsID 10027) and the G21.5-0.9 image (ObsID 1838). The numbers below
# then describe those fields and check the machinery, not the science of B0453-685.

# %% tags=["parameters"]
target = "B0453-685"
ra = 73.39                  # deg (J2000)
dec = -68.49
roi_deg = 10.0              # LAT cone radius and ROI width, deg
obsid = 1990                # Chandra ACIS-I observation of B0453-685
bands = {"soft": (0.5, 1.2), "medium": (1.2, 2.0), "hard": (2.0, 7.0)}   # keV
binsize = 2.0               # Chandra sky pixels per image pixel
match_radius_arcsec = 2.0   # counterpart search radius
lat_maps_dir = ""           # live mode without fermipy: gtbin/gtexpcube2/gtpsf/model-cube files (ccube.fits, bexpmap.fits, psf.fits, bkg_cube.fits)
archive = "auto"            # "live", "local" or "auto" (conf.archive / MWNB_ARCHIVE)
out_dir = "mwnb_products"

# %%
import warnings
from pathlib import Path
import numpy as np
from IPython.display import Image, display
import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from mwnb.config import archive_note
from mwnb.demo.archive import use_archive
from mwnb.config import conf
from mwnb import fermi, chandra
from mwnb.errors import MissingInputError, EngineUnavailableError

la = use_archive(archive)
local = la is not None
if local:
    from mwnb.demo.fermi import DEMO_BANNER, lat_demo_uris
    print(DEMO_BANNER)
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
lat_dir = out / "lat"; lat_dir.mkdir(exist_ok=True)
engines = {}

def show(png):
    "Embed the saved figure `png` in the notebook (a figure object alone is not displayed under every backend)."
    display(Image(filename=str(png)))


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
# as a point source with a free power law. Every input path is written absolute, the file fermipy will
# read from any working directory. With the Fermi ScienceTools present (live), the diffuse models are
# downloaded from where FSSC publishes them.

# %%
(lat_dir / "events.txt").write_text("\n".join(str(p.resolve()) for p in lat_files["photon"]) + "\n")
if not local and fermi.lat_engine() == "fermipy":
    fermi.fetch_fermi_diffuse(lat_dir)   # gll_iem_v07.fits (~0.5 GB) and the isotropic spectrum, once
config = fermi.fermipy_config(target, ra, dec, evfile="events.txt", scfile=sc_file.name, roiwidth=roi_deg,
                              outdir=str((out / "fermipy").resolve()))
config_path = fermi.write_fermipy_config(config, lat_dir / "config.yaml")
print(config_path.read_text())

# %% [markdown]
# Every input file must be there before the likelihood starts; a missing one is named with where to
# get it.

# %%
import yaml
try:
    fermi.check_fermipy_inputs(yaml.safe_load(config_path.read_text()))   # by fermipy's own path rules
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
# Upper limits are 95% one-sided (-2 ln L up by 2.71) for both engines, drawn when TS < 4; a curved spectrum replaces the
# power law when TS_curv >= 9.
#
# **Local mode:** the stand-in is `mwnb.demo.fermi.LAT_STAND_IN`: PSR J1809-2332 in a 5 deg ROI of the Galactic-Centre
# >10 GeV maps, its 4FGL entry left out so that it plays the new source; the maps are converted to ScienceTools format
# with the approximations printed below.

# %%
engine = fermi.lat_engine()
print("LAT likelihood engine available:", engine)
lat = None
if engine == "fermipy" and inputs_ok:
    lat = fermi.run_lat_likelihood(out / "lat_fit", config_path=config_path, target=target, engine="fermipy")
elif local:
    from mwnb.demo.fermi import LAT_STAND_IN, lat_demo_products, lat_stand_in_position
    maps = lat_demo_products(lat_dir / "maps", catalog)
    for k, how in maps["approximations"].items(): print(f"  stand-in {k}: {how}")
    lat_target = f"{LAT_STAND_IN['name']}"
    lat = fermi.run_lat_likelihood(out / "lat_fit", maps=maps, target=lat_target, position=lat_stand_in_position(),
                                   engine="gammapy", catalog=catalog, exclude=LAT_STAND_IN["exclude"], free_radius=0.5)
elif lat_maps_dir:
    maps = fermi.lat_maps_in(lat_maps_dir)
    lat = fermi.run_lat_likelihood(out / "lat_fit", maps=maps, target=target, position=SkyCoord(ra, dec, unit="deg"),
                                   engine="gammapy", catalog=catalog, extdirs=[extdir])
else:
    print("LAT likelihood not run.", fermi.lat_gammapy_needs())
if lat is not None:
    engines["LAT likelihood"] = lat["engine"]
    loc = lat["localisation"]
    label = f" ({'stand-in: ' + lat['source'].name if local else target})" if lat["engine"] == "gammapy" else ""
    print(f"engine {lat['engine']}{label}: TS = {lat['ts']:.1f}; position RA {loc['ra']:.3f}, Dec {loc['dec']:.3f} deg, "
          f"95% ellipse {loc['pos_err_semimajor'] * 2.448:.3f} x {loc['pos_err_semiminor'] * 2.448:.3f} deg at {loc['pos_angle']:.0f} deg; "
          f"spectrum: {lat['spectral_model']}")

# %%
if lat is not None: display(Table.read(lat["files"]["spectral_models"]))

# %%
if lat is not None: show(lat["files"]["maps_png"])

# %%
if lat is not None: show(lat["files"]["tsmap_png"])

# %%
if lat is not None:
    display(lat["sed"]["e_ref", "dnde", "dnde_err", "dnde_ul", "ts", "is_ul"])
    show(lat["files"]["sed_png"])

# %%
if lat is not None and "lightcurve_png" in lat["files"]:
    display(lat["lightcurve"]["mjd_start", "mjd_stop", "flux", "flux_err", "flux_ul", "ts", "is_ul"])
    show(lat["files"]["lightcurve_png"])

# %% [markdown]
# ## 5. Chandra ObsID 1990
#
# The image is found through the VO registry's Chandra SIA service and its DataLink `#this` link to
# the S3 copy; the event file next to it by listing the ObsID's `primary/` directory in the bucket.

# %%
cx = chandra.chandra_obsid_files(obsid)
cx["image"] = chandra.find_chandra_image(ra, dec, obsid)
print(cx)
events = chandra.read_events(cx["events"])
# the data's own label: demo stand-ins carry MWNBDEMO (and MWNBFOR, what they stand in for) in every header
stand_in = (f"stand-in: {events.meta.get('OBJECT')} ObsID {events.meta.get('OBS_ID')} for {events.meta.get('MWNBFOR', target)}"
            if events.meta.get("MWNBDEMO") else "")
print(len(events), "events;", events.meta.get("OBJECT"), "ObsID", events.meta.get("OBS_ID"), f"({stand_in})" if stand_in else "")

# %%
# the image spans the central 99.8% of the events (a few stray events far out would only add empty sky)
x, y = np.asarray(events["x"]), np.asarray(events["y"])
(x0, x1), (y0, y1) = np.percentile(x, [0.1, 99.9]), np.percentile(y, [0.1, 99.9])
size = int(max(x1 - x0, y1 - y0) / binsize) + 1
images, wcs = chandra.band_images(events, bands=bands, binsize=binsize, center=((x0 + x1) / 2, (y0 + y1) / 2), size=size)
rgb = chandra.rgb_image(images)
for name, im in images.items(): print(f"{name:7s} {bands[name]} keV: {int(im.sum())} counts")

# %% [markdown]
# Point sources on the broad-band (0.5-7 keV) image: CIAO `wavdetect` when installed, else photutils.

# %%
broad = sum(images.values())
sources = chandra.detect_sources(broad, wcs)
engines["X-ray source detection"] = sources.meta["engine"]
print(f"{len(sources)} sources (engine: {sources.meta['engine']})")
src_files = chandra.save_sources(sources, out)
sources[:10]

# %% [markdown]
# A quick spectrum of the brightest source (source circle 3", background annulus 6-15").

# %%
bright = SkyCoord(sources["ra"][0], sources["dec"][0])
spec = chandra.source_spectrum(events, bright)
spec.write(out / "chandra_brightest_spectrum.ecsv", overwrite=True)
chandra.plot_spectrum(spec, out / "chandra_brightest_spectrum.png",
                      title=f"X{sources['id'][0]}: net {spec['net_counts'].sum():.0f} counts" + (f"\n({stand_in})" if stand_in else ""))
show(out / "chandra_brightest_spectrum.png")

# %% [markdown]
# The full-field image of the ObsID, with the same detection.

# %%
if cx["image"]:
    img, iwcs = chandra.read_image(cx["image"])
    img_sources = chandra.detect_sources(img, iwcs)
    chandra.save_sources(img_sources, out, stem="chandra_image_sources")
    print(f"{len(img_sources)} sources on the full image; brightest at "
          f"{SkyCoord(img_sources['ra'][0], img_sources['dec'][0]).to_string('hmsdms')}")

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
mast_obs = chandra.mast_observations(centre.ra.deg, centre.dec.deg, radius_deg=0.1)
mast_obs.write(out / "mast_hst_galex_observations.ecsv", overwrite=True)
print(f"MAST HST/GALEX: {len(mast_obs)} observations", mast_obs.meta.get("note", ""))

# %%
chandra.plot_rgb(rgb, wcs, sources=sources, counterparts=cps, path=out / "chandra_rgb_sources.png",
                 title=f"{events.meta.get('OBJECT', target)} ObsID {events.meta.get('OBS_ID', obsid)}: 0.5-1.2 / 1.2-2 / 2-7 keV"
                       + (f"\n({stand_in})" if stand_in else ""))
show(out / "chandra_rgb_sources.png")

# %% [markdown]
# ## 6b. Position errors, chance coincidences, the merged table and "Src 2"
#
# Each X-ray source gets a 95% position error that grows with off-axis angle and shrinks with counts (the
# relation the Chandra Source Catalog uses, plus Chandra's absolute astrometry); counterparts are matched
# within each source's own radius, with the expected number of unrelated stars in that circle. The
# brightest point source other than the PWN is the seed's "Src 2".

# %%
src = chandra.add_position_errors(sources, events.meta)
chandra.plot_image(broad, wcs, sources=src, highlight=2, path=out / "chandra_image.png",
                   title=f"{events.meta.get('OBJECT', target)} 0.5-7 keV" + (f"\n({stand_in})" if stand_in else ""))
show(out / "chandra_image.png")
cps_auto = chandra.find_counterparts(src)
chance = chandra.chance_coincidence(src)
pwn_id, src2_id = chandra.follow_up_source(src, pwn=None if local else SkyCoord(ra, dec, unit="deg"))   # the stand-in field has no PWN at the target
merged = chandra.merged_table(src, cps_auto, chance, pwn_id=pwn_id, follow_up_id=src2_id)
merged.write(out / "chandra_sources_counterparts.ecsv", overwrite=True)
print(chandra.follow_up_summary(merged, src2_id)["note"])

# %% [markdown]
# The X-ray spectrum: live, the Chandra Source Catalog's per-source spectral products of the PWN; in the demo
# archive a real Swift-XRT spectrum stands in (labelled). An absorbed power law gives the flux with its 90% interval.

# %%
if local:
    s = chandra.stand_in_spectrum()
else:
    found = chandra.fetch_csc_spectra(chandra.csc_obsid_sources(obsid)[:1], out / "csc_spectra")
    s = found[0] if isinstance(found, list) else found
xfit = chandra.fit_source_spectrum(s["pha"], s["arf"], s["rmf"], label=s.get("label", ""))
xfit.write(out / "xray_spectral_fit.ecsv", overwrite=True)
xflux = chandra.sed_xray_flux(xfit)
print({k: xflux[k] for k in ("e_min_keV", "e_max_keV", "unabsorbed_flux", "unabsorbed_flux_lo", "unabsorbed_flux_hi", "label")})

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
for png in wmap_pngs.values(): show(png)

# %% [markdown]
# ## 7. The combined SED and a one-zone PWN model
#
# The WMAP aperture (an upper limit), the X-ray flux with its interval, the LAT flux points (upper limits at their stated\n95% one-sided level) and any published radio flux densities go into
# one SED table with units and per-point provenance (`mwnb.sed`); stand-in points are labelled as such.

# %%
from mwnb import sed as mwsed
sed_parts = [mwsed.literature_radio_points(), mwsed.radio_points(wmap_flux), mwsed.xray_points(xfit)]
if lat is not None:
    sed_parts.append(mwsed.gamma_points(lat["sed"], archive=archive,
                                        stand_in=f"stand-in: LAT points of {lat['source'].name}" if local else None))
mw_sed = mwsed.combine_sed(*sed_parts, target=target, archive=archive)
sed_out = mwsed.sed_products(mw_sed, out)   # sed.ecsv, sed_fit_parameters.ecsv, sed_fit.png (naima one-zone leptonic)
show(out / "sed_fit.png")
print(mw_sed.meta["label"] or "no stand-in points", "|", mw_sed.meta["n_points"], "points, regimes", mw_sed.meta["regimes"])
mw_sed["band", "energy", "flux", "ul", "stand_in", "provenance"]

# %% [markdown]
# ## Products and engines

# %%
engines_table = Table(rows=list(engines.items()), names=["step", "engine"])
engines_table.meta["archive"] = archive_note()
engines_table.write(out / "engines.ecsv", overwrite=True)
print(engines_table)
for p in sorted(out.rglob("*")):
    if p.is_file() and p.suffix in (".ecsv", ".png", ".fits", ".reg", ".yaml"): print(p.relative_to(out))
