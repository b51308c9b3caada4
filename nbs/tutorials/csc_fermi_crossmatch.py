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
#    as ECSV, VOTable and CSV, and as the drafts' `grouped_csc_fermi_pairs.csv` (with a units row);
# 6. Gaia DR3 and 2MASS stars near every Fermi source and matched CSC position, in one table upload per catalog,
#    merged into the drafts' final `grouped_csc_fermi_gaia_2mass_pairs.csv` (units row, sorted by Fermi l, b);
# 7. the figures: the matched sources on the sky and along the whole plane (coloured by the X-ray/gamma flux
#    ratio, Fermi markers scaled by the 95% radius), matches and flux ratios along the plane and by class,
#    counterparts by class, and the Gaia variability of the counterparts.
#
# 4FGL classes are kept as published: capitals for identified sources (`PSR`), lower case for associated
# ones (`psr`), blank for unassociated; the figures show them so (`fold_case=True` groups them).
#
# Run it against the real archives (`archive = "live"`) or the local demo archive (`archive = "local"`:
# real catalog rows served on 127.0.0.1, see `mwnb.demo.crossmatch`: 5,788 real CSC 2 sources, among them all
# 5,462 the published tutorial found in the 95% circles of the 169 4FGL sources with l < 180 deg, |b| <= 10 deg,
# so the offline run reproduces that half of the published match; its Gaia and 2MASS stars near the plane are
# labelled stand-ins, see step 6).

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
from mwnb.catalogs import (chandra_observations, csc_sources, fermi_4fgl, log10_flux, flux_summary, class_group,
                           CSC_PUBLISHED)
from mwnb.crossmatch import (match_local, match_tap, compare_pairs, group_by_fermi, chance_matches, add_reliability,
                             save_grouped, find_counterparts, published_layout, write_units_csv, PUBLISHED_PAIRS)
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
# Every observation in HEASARC's `chanmaster` that has a position (the table also has rows with NULL
# `ra`/`dec`, which the query leaves out), coloured by log exposure.

# %%
obs = chandra_observations()
print(len(obs), "Chandra observations with a position")
if la is not None:   # the local demo archive: what its chanmaster synthesises, from the demo table's own metadata
    from mwnb.demo.crossmatch import chanmaster_table
    from mwnb.config import data_dir
    print("demo chanmaster:", chanmaster_table(data_dir()).meta["MWNBDEMO"])
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
# the drafts' check that the whole table came back (not a capped or random sample): count, min, max, mean flux
s = flux_summary(csc_all)
print(f"b_flux_ap: n = {s['n']}, min = {s['min']:.3e}, max = {s['max']:.3e}, mean = {s['mean']:.3e} erg/cm2/s")
if la is None:
    print(f"published (live HEASARC csc): {CSC_PUBLISHED['n_sources']} sources, {CSC_PUBLISHED['n_positive_flux']} with "
          f"b_flux_ap > 0, {CSC_PUBLISHED['n_positive_flux_plane']} of those with |b| <= 10 deg")
else:
    print("demo csc:", csc_all.meta.get("MWNBDEMO", "(no label)"))
csc = csc_all[np.abs(csc_all["b"]) <= b_max] if b_max is not None else csc_all
print(f"{len(csc)} of them with |b| <= {b_max} deg")
skyplots.aitoff_map(csc_all["l"], csc_all["b"], log10_flux(csc_all["flux_b"]), out / "csc_aitoff.png",
                    title=f"{len(csc_all)} CSC sources", clabel="log10 b_flux_ap [erg/cm2/s]")
show(out / "csc_aitoff.png")
skyplots.lon_lat_histograms(csc_all["l"], csc_all["b"], out / "csc_lon_lat_hist.png", label="CSC sources")
show(out / "csc_lon_lat_hist.png")
from astropy.coordinates import SkyCoord
l_center = SkyCoord(ra, dec, unit="deg").galactic.l.deg   # the strip covers all longitudes, centred here
skyplots.plane_strip(csc_all["l"], csc_all["b"], log10_flux(csc_all["flux_b"]), out / "csc_plane_strip.png",
                     l_center=l_center, b_max=b_max or 10.0, clabel="log10 b_flux_ap [erg/cm2/s]")
show(out / "csc_plane_strip.png")

# %% [markdown]
# ## 3. 4FGL-DR4
#
# The FSSC catalog file (downloaded once, atomically) or HEASARC's `fermilpsc` table. Extended sources
# have no 95% position ellipse; they are matched through their extension (disk radius or Gaussian 68%
# containment, from the catalog file's extended-source table). HEASARC's `fermilpsc` names them
# (`extended_source_name`) but has no size for them, so on that route they are counted, not matched.
# Sources left without any region are counted too.

# %%
if fermi_source == "fssc":
    from mwnb.cloud import download
    fermi_all = fermi_4fgl(download(conf.fermi_catalog_url, out / "gll_psc_v35.fit", progress=False))
else:
    fermi_all = fermi_4fgl()
fermi = fermi_all[np.abs(fermi_all["b"]) <= b_max] if b_max is not None else fermi_all
m = fermi_all.meta
print(f"{len(fermi_all)} 4FGL sources: {m['n_extended']} extended ({m['n_extended_region']} with their extension as region), "
      f"{m['n_no_ellipse']} without any region; {len(fermi)} with |b| <= {b_max}")
cls = np.asarray(fermi["class1"]).astype(str)
print(f"classes as published: {int(np.char.isupper(cls).sum())} identified (capitals), "
      f"{int((np.char.islower(cls)).sum())} associated (lower case), {int((cls == '').sum())} unassociated; "
      f"{len(set(class_group(cls)))} classes once folded (class_group)")

# %% [markdown]
# ## 4. CSC sources inside the Fermi regions
#
# The local matcher (KD-tree on unit vectors, exact Vincenty separations, ellipse test with the position
# angle east of north) runs on the whole selection. The same match is then run as ADQL on the archive
# (the Fermi sources near any CSC source uploaded with `TAP_UPLOAD`, the circle in `CONTAINS`, and the same
# cuts as the local selection: `b_flux_ap > min_flux`, `|bii| <= b_max`). The two are compared both ways:
# no pair may be missing from the server's answer, none may be extra, and the server's own `DISTANCE` must
# agree with the local separation of every pair.

# %%
pairs = match_local(csc, fermi, region)
print(f"engine: local KD-tree matcher; region {region}: {len(pairs)} pairs, "
      f"{len(set(pairs['fermi_index']))} Fermi sources with at least one CSC source")
on_ext = np.asarray(fermi["region_source"])[np.asarray(pairs["fermi_index"])] == "extension"
print(f"  {int((~on_ext).sum())} pairs in 95% regions of {len(set(pairs['fermi_name'][~on_ext]))} point sources, "
      f"{int(on_ext.sum())} in the extensions of {len(set(pairs['fermi_name'][on_ext]))} extended sources "
      f"(the published server-side match has none: HEASARC fermilpsc has no 95% axes for them)")
if la is None:
    print(f"published (second draft, live HEASARC): {PUBLISHED_PAIRS['n_pairs']} pairs on {PUBLISHED_PAIRS['n_fermi']} Fermi sources")
else:   # the demo csc holds every CSC source of the published match for l < 180 deg: compare that half
    half = (~on_ext) & (np.asarray(pairs["fermi_l"]) < 180)
    print(f"l < 180 deg, point sources: {int(half.sum())} pairs on {len(set(pairs['fermi_name'][half]))} Fermi sources; "
          f"published: {PUBLISHED_PAIRS['n_pairs_l_below_180']} on {PUBLISHED_PAIRS['n_fermi_l_below_180']} "
          f"(one pair differs: see tests/test_crossmatch.py::test_published_half_reproduced)")
near = np.unique(np.asarray(match_local(csc, fermi, "radius:1deg")["fermi_index"]))
server = match_tap(csc, fermi[near], region, min_flux=min_flux, b_max=b_max)
check = compare_pairs(server, match_local(csc, fermi[near], region))
print(f"server-side ADQL on {len(near)} Fermi sources near CSC sources: {check['n_server']} pairs, {check['n_local']} local; "
      f"missing {len(check['missing'])}, extra {len(check['extra'])}; "
      f"max |server DISTANCE - local separation| = {check['max_sep_diff_deg']:.1e} deg (tolerance {check['sep_tol_deg']:.0e})")
assert check["ok"], f"server-side and local matches differ: {check}"
pairs.write(out / "pairs.ecsv", overwrite=True)

# %% [markdown]
# ## 5. One row per Fermi source, with the chance-match expectation
#
# Each region is moved off-source (2.5 and 4 times its radius, four directions) and matched again; the mean
# count is the number of CSC sources expected by chance, reported beside the real count.
#
# The drafts' `grouped_csc_fermi_pairs.csv` follows: matched Fermi sources sorted by (l, b), the CSC lists
# joined by `", "`, a units row under the header.

# %%
grouped = add_reliability(group_by_fermi(pairs, fermi), chance_matches(csc, fermi, region))
paths = save_grouped(grouped, out, "grouped")
matched = grouped[grouped["n_matches"] > 0]
print(f"{len(matched)} Fermi sources matched; {matched['n_matches'].sum()} matches against "
      f"{matched['n_chance'].sum():.2f} expected by chance")
if la is not None:   # the demo csc has CSC sources only where the published match found them: few off-source ones
    print(f"(demo: the csc table holds the published matches' sources and the 326 of the CSC2 example, hardly any "
          f"off-source field, so n_chance is a floor here; live, the shifted regions sample the real Chandra fields)")
paths["published_csv"] = write_units_csv(published_layout(grouped), out / "grouped_csc_fermi_pairs.csv")
print({k: str(v) for k, v in paths.items()})
matched["name", "class1", "region_source", "n_matches", "n_chance", "p_chance"][:15]

# %% [markdown]
# ## 6. Gaia DR3 and 2MASS counterparts
#
# Every Fermi centroid and every matched CSC position goes up in one table per catalog (`TAP_UPLOAD`);
# the `n_nearest` stars within `counterpart_radius` of each position are kept, with their separations
# from the Fermi centroid and from the nearest CSC source. They are merged with the grouped table into the
# drafts' final `grouped_csc_fermi_gaia_2mass_pairs.csv`.
#
# Offline, the local demo archive has only the 7 Gaia DR3 and 8 2MASS rows available here, and none of
# them lies near these sources (the nearest is 0.107 deg from a 4FGL centroid and 7.6 deg from a CSC
# source). So the demo also serves a labelled stand-in copy of each, re-pointed next to a matched CSC
# source of a different Fermi class: the counterpart step and its figures have rows to show, and every
# table and figure made from them carries the `MWNBDEMO` label. Against the live archives the stars are real.

# %%
gaia = find_counterparts(fermi, pairs, "gaia", counterpart_radius, n_nearest)
tmass = find_counterparts(fermi, pairs, "2mass", counterpart_radius, n_nearest)
for name, t in (("gaia_counterparts", gaia), ("twomass_counterparts", tmass)):
    t.write(out / f"{name}.ecsv", overwrite=True)
    print(f"{name}: {len(t)} stars around {len(set(t['fermi_index']))} Fermi sources "
          f"({t.meta['n_requests']} request(s))")
    if t.meta.get("MWNBDEMO"): print("  ", t.meta["MWNBDEMO"])
final = published_layout(grouped, gaia, tmass)
final_csv = write_units_csv(final, out / "grouped_csc_fermi_gaia_2mass_pairs.csv")
print(f"{final_csv.name}: {len(final)} Fermi sources, {int((final['gaia_names'] != '').sum())} with Gaia stars, "
      f"{int((final['twomass_names'] != '').sum())} with 2MASS stars; units row: {', '.join(u for u in final.meta['units'].values() if u)[:120]} ...")
final["fermi_name", "fermi_l", "fermi_b", "fermi_class", "num_csc_matches", "gaia_names", "gaia_variability"][
    final["gaia_names"] != ""]

# %% [markdown]
# ## 7. Figures

# %%
if len(pairs):
    skyplots.matched_aitoff(pairs, out / "matched_csc_fermi_aitoff.png")
    show(out / "matched_csc_fermi_aitoff.png")
    skyplots.flux_ratio_plane_map(pairs, out / "flux_ratio_plane_map.png", b_max=b_max or 10.0, l_center=l_center)
    show(out / "flux_ratio_plane_map.png")
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
skyplots.gaia_variable_fraction_by_class(gaia, out / "gaia_variable_fraction_by_class.png")
show(out / "gaia_variable_fraction_by_class.png")

# %%
products = sorted(p.name for p in out.iterdir())
print("products in", out, ":", products)
