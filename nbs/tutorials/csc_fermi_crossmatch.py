# %% [markdown]
# # Chandra sources in Fermi-LAT error regions (CSC x 4FGL-DR4 x Gaia DR3 x 2MASS)
#
# Which X-ray sources of the Chandra Source Catalog (CSC) fall inside the 95% position regions of the
# Fermi-LAT 4FGL-DR4 gamma-ray sources, how many of those matches would happen by chance, and which
# Gaia DR3 and 2MASS stars lie near them. The steps:
#
# 1. all Chandra observations (HEASARC `chanmaster`) on the sky, coloured by exposure;
# 2. all CSC sources with a positive broad-band flux (HEASARC `csc`), complete, on the sky and along the plane;
# 3. the 4FGL-DR4 catalog (the FSSC file `gll_psc_v35.fit`, or HEASARC `fermilpsc`);
# 4. CSC sources inside each Fermi region (fixed radius, 95% semi-major circle, or the real 95% ellipse),
#    matched locally with a KD-tree and checked against the same match run as ADQL on the server;
# 5. one row per Fermi source with its CSC counterparts and the expected number of chance matches, saved
#    as ECSV, VOTable and CSV;
# 6. Gaia DR3 and 2MASS stars near every Fermi source and matched CSC position, in one table upload per catalog;
# 7. the figures: matches and X-ray/gamma flux ratios along the plane and by class, counterparts by class.
#
# Run it against the real archives (`archive = "live"`) or the local demo archive (`archive = "local"`:
# real catalog rows served on 127.0.0.1, see `mwnb.demo.crossmatch`).

# %% tags=["parameters"]
target = "Galactic plane"   # what the selection below describes
ra = 266.40499              # deg, centre of the plane strip figure (the Galactic centre)
dec = -28.93617
b_max = 10.0                # deg, keep sources with abs(b) at most this; None for the whole sky
min_flux = 0.0              # keep CSC sources with b_flux_ap > min_flux (erg/cm2/s)
region = "circle95"         # "circle95", "ellipse95" or "radius:0.1deg"
counterpart_radius = 0.03   # deg, Gaia/2MASS search radius around each position
n_nearest = 3               # stars kept per search position
fermi_source = "fssc"       # "fssc" (download gll_psc_v35.fit) or "tap" (HEASARC fermilpsc)
archive = "auto"
out_dir = "mwnb_products"

# %%
import warnings
from pathlib import Path
import numpy as np
from IPython.display import Image, display
import astropy.units as u
from astropy.table import Table
from mwnb.config import archive_note
from mwnb.demo.archive import use_archive
from mwnb.config import conf
from mwnb.catalogs import chandra_observations, csc_sources, fermi_4fgl, log10_flux
from mwnb.crossmatch import (match_local, match_tap, same_pairs, group_by_fermi, chance_matches, add_reliability,
                             save_grouped, find_counterparts)
from mwnb import skyplots
warnings.simplefilter("ignore", u.UnitsWarning)

la = use_archive(archive)
out = Path(out_dir) / "csc_fermi_crossmatch"
out.mkdir(parents=True, exist_ok=True)
print("archive:", archive_note())
print("HEASARC TAP:", conf.heasarc_tap)

def show(png):
    "Embed the saved figure `png` in the notebook (a figure object alone is not displayed under every backend)."
    display(Image(filename=str(png)))


# %% [markdown]
# ## 1. Chandra observations
#
# Every observation in HEASARC's `chanmaster`, coloured by log exposure.

# %%
obs = chandra_observations()
print(len(obs), "Chandra observations")
skyplots.exposure_map(obs, out / "chandra_observations_aitoff.png")
show(out / "chandra_observations_aitoff.png")

# %% [markdown]
# ## 2. Chandra Source Catalog
#
# The whole `csc` table, paged by declination if the server caps the rows (the archive layer raises
# rather than return a short table). Sources with zero or negative flux are dropped and counted.

# %%
csc_all = csc_sources(min_flux=min_flux, page_by="dec")
print(f"{len(csc_all)} CSC sources with b_flux_ap > {min_flux} ({csc_all.meta['n_dropped_flux']} dropped)")
csc = csc_all[np.abs(csc_all["b"]) <= b_max] if b_max is not None else csc_all
print(f"{len(csc)} of them with |b| <= {b_max} deg")
skyplots.aitoff_map(csc_all["l"], csc_all["b"], log10_flux(csc_all["flux_b"]), out / "csc_aitoff.png",
                    title=f"{len(csc_all)} CSC sources", clabel="log10 b_flux_ap [erg/cm2/s]")
show(out / "csc_aitoff.png")
skyplots.lon_lat_histograms(csc_all["l"], csc_all["b"], out / "csc_lon_lat_hist.png", label="CSC sources")
show(out / "csc_lon_lat_hist.png")
from astropy.coordinates import SkyCoord
l_center = SkyCoord(ra, dec, unit="deg").galactic.l.deg
skyplots.plane_strip(csc_all["l"], csc_all["b"], log10_flux(csc_all["flux_b"]), out / "csc_plane_strip.png",
                     l_center=l_center, b_max=b_max or 10.0, clabel="log10 flux")
show(out / "csc_plane_strip.png")

# %% [markdown]
# ## 3. 4FGL-DR4
#
# The FSSC catalog file (downloaded once, atomically) or HEASARC's `fermilpsc` table. Sources without a
# 95% ellipse (the extended ones) cannot be matched and are counted.

# %%
if fermi_source == "fssc":
    from mwnb.cloud import download
    fermi_all = fermi_4fgl(download(conf.fermi_catalog_url, out / "gll_psc_v35.fit", progress=False))
else:
    fermi_all = fermi_4fgl()
fermi = fermi_all[np.abs(fermi_all["b"]) <= b_max] if b_max is not None else fermi_all
print(f"{len(fermi_all)} 4FGL sources ({fermi_all.meta['n_no_ellipse']} without a 95% ellipse); {len(fermi)} with |b| <= {b_max}")

# %% [markdown]
# ## 4. CSC sources inside the Fermi regions
#
# The local matcher (KD-tree on unit vectors, exact Vincenty separations, ellipse test with the position
# angle east of north) runs on the whole selection. The same match is then run as ADQL on the archive
# (the Fermi sources near any CSC source uploaded with `TAP_UPLOAD`, the circle in `CONTAINS`), and the
# two must give the same pairs.

# %%
pairs = match_local(csc, fermi, region)
print(f"engine: local KD-tree matcher; region {region}: {len(pairs)} pairs, "
      f"{len(set(pairs['fermi_index']))} Fermi sources with at least one CSC source")
near = np.unique(np.asarray(match_local(csc, fermi, "radius:1deg")["fermi_index"]))
server = match_tap(csc, fermi[near], region)
local_near = match_local(csc, fermi[near], region)
assert same_pairs(server, local_near), "server-side and local matches differ"
print(f"server-side ADQL on {len(near)} Fermi sources near CSC sources: {len(server)} pairs, identical to local")
pairs.write(out / "pairs.ecsv", overwrite=True)

# %% [markdown]
# ## 5. One row per Fermi source, with the chance-match expectation
#
# Each region is moved off-source (2.5 and 4 times its radius, four directions) and matched again; the mean
# count is the number of CSC sources expected by chance, reported beside the real count.

# %%
grouped = add_reliability(group_by_fermi(pairs, fermi), chance_matches(csc, fermi, region))
paths = save_grouped(grouped, out, "grouped")
matched = grouped[grouped["n_matches"] > 0]
print(f"{len(matched)} Fermi sources matched; {matched['n_matches'].sum()} matches against "
      f"{matched['n_chance'].sum():.2f} expected by chance")
print({k: str(v) for k, v in paths.items()})
matched["name", "class1", "n_matches", "n_chance", "p_chance"][:15]

# %% [markdown]
# ## 6. Gaia DR3 and 2MASS counterparts
#
# Every Fermi centroid and every matched CSC position goes up in one table per catalog (`TAP_UPLOAD`);
# the `n_nearest` stars within `counterpart_radius` of each position are kept, with their separations
# from the Fermi centroid and from the nearest CSC source. (The local demo archive holds only the 7 Gaia
# DR3 and 8 2MASS rows available offline, none near these sources, so its counterpart tables come back
# empty; against the live archives they fill.)

# %%
gaia = find_counterparts(fermi, pairs, "gaia", counterpart_radius, n_nearest)
tmass = find_counterparts(fermi, pairs, "2mass", counterpart_radius, n_nearest)
for name, t in (("gaia_counterparts", gaia), ("twomass_counterparts", tmass)):
    t.write(out / f"{name}.ecsv", overwrite=True)
    print(f"{name}: {len(t)} stars around {len(set(t['fermi_index']))} Fermi sources "
          f"({t.meta['n_requests']} request(s))")

# %% [markdown]
# ## 7. Figures

# %%
skyplots.matches_along_plane(grouped, out / "matches_per_fermi_lon_lat.png")
show(out / "matches_per_fermi_lon_lat.png")
if len(pairs):
    skyplots.flux_ratio_plots(pairs, out / "flux_ratio_vs_l_b.png")
    show(out / "flux_ratio_vs_l_b.png")
    skyplots.flux_ratio_by_class(pairs, out / "flux_ratio_by_class.png")
    show(out / "flux_ratio_by_class.png")
else:
    print("no CSC source inside any Fermi region: no flux-ratio figures")
skyplots.counterparts_by_class({"CSC": pairs, "Gaia DR3": gaia, "2MASS": tmass}, fermi, out / "counterparts_by_class.png")
show(out / "counterparts_by_class.png")
skyplots.gaia_variability_by_class(gaia, out / "gaia_variability_by_class.png")
show(out / "gaia_variability_by_class.png")

# %%
products = sorted(p.name for p in out.iterdir())
print("products in", out, ":", products)
