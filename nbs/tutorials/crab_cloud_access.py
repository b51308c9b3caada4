# %% [markdown]
# # Data access in the cloud: the Crab Nebula
#
# > Find images of a target in IRSA, MAST and HEASARC through VO services, turn each record into
# > its copy on AWS S3 with one resolver, and read only the bytes a cutout needs.
#
# Every archive advertises its cloud copies differently (IRSA: a JSON `cloud_access` column in SIA;
# HEASARC: DataLink and an https tree mirrored in `s3://nasa-heasarc`; MAST: `mast:` data URIs and a
# path lookup). `mwnb.cloud.cloud_uri` accepts all of them. Run for another target with
# `mwnb run NAME --ra DEG --dec DEG` or `papermill -p target ... -p ra ... -p dec ...`.

# %% tags=["parameters"]
target = "Crab"
ra = 83.63321            # deg, ICRS
dec = 22.01446           # deg, ICRS
cutout_arcmin = 6.0      # side of the square cutouts
search_radius_deg = 0.1  # image search radius
surveys = ["wise", "panstarrs", "chandra", "rosat"]
archive = "auto"         # live | local | auto (MWNB_ARCHIVE)
out_dir = "mwnb_products"

# %%
from pathlib import Path
import numpy as np
import matplotlib
import matplotlib.pyplot as plt
import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.visualization import simple_norm
import pyvo
from mwnb.config import conf
from mwnb.local_archive import use_archive, archive_note
from mwnb.archive import tap_query, registry_search
from mwnb.cloud import cloud_uri, cutout, open_fits, rosat_events_uri
from mwnb.targets import check_coordinates

la = use_archive(archive)
ra, dec = check_coordinates(ra, dec)
position = SkyCoord(ra, dec, unit="deg")
size = cutout_arcmin * u.arcmin
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
products = []
print(f"target {target} at {position.to_string('hmsdms')}; archive: {archive_note()}")


# %% [markdown]
# A helper for this notebook: save every cutout as FITS (with its WCS and provenance) and as a PNG.

# %%
def save_cutout(c, name, title):
    "Write a Cutout2D as FITS + PNG under `out`, show it, and record it."
    from astropy.io import fits
    hdr = c.wcs.to_header(); hdr["ORIGIN"] = "mwnb"; hdr["MWNBSRC"] = (archive_note()[:68], "archive")
    fits.PrimaryHDU(np.asarray(c.data), hdr).writeto(out / f"{name}.fits", overwrite=True)
    fig = plt.figure(figsize=(5, 5)); ax = fig.add_subplot(projection=c.wcs)
    ax.imshow(c.data, origin="lower", cmap="magma", norm=simple_norm(c.data, "asinh", percent=99.5))
    ax.set_title(title, fontsize=9); ax.set_xlabel("RA"); ax.set_ylabel("Dec")
    fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight"); plt.show()
    products.append((name, f"{name}.fits", f"{name}.png", title))


# %% [markdown]
# ## IRSA allWISE: SIA v2 -> `cloud_access` -> streamed cutout

# %%
if "wise" in surveys:
    sia = pyvo.dal.SIA2Service(conf.irsa_sia)
    wise = sia.search(pos=(ra * u.deg, dec * u.deg, search_radius_deg * u.deg), collection="wise_allwise").to_table()
    print(f"{len(wise)} allWISE image(s) cover the target")
    uri = cloud_uri(wise[0])
    print("cloud copy:", uri)
    save_cutout(cutout(uri, position, size), "wise_cutout", f"allWISE {wise[0]['obs_id']} ({target})")

# %% [markdown]
# ## MAST PanSTARRS: ObsTAP found through the VO registry -> `mast:` URI -> S3

# %%
if "panstarrs" in surveys:
    services = registry_search("obscore", "tap")
    mast = [s for s in services if "stsci" in s["ivoid"] or "mast" in s["res_title"].lower()]
    mast_url = mast[0]["access_url"] if mast else conf.mast_tap
    print("MAST ObsTAP:", mast_url)
    ps1 = tap_query(mast_url, "SELECT TOP 20 obs_id, filters, s_ra, s_dec, access_url FROM ivoa.obscore "
                    f"WHERE obs_collection = 'PS1' AND dataproduct_type = 'image' AND "
                    f"CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, {search_radius_deg})) = 1")
    print(f"{len(ps1)} PanSTARRS image(s)")
    uri = cloud_uri(ps1[0])
    print("cloud copy:", uri)
    save_cutout(cutout(uri, position, size), "panstarrs_cutout", f"PanSTARRS {ps1[0]['obs_id']} ({target})")

# %% [markdown]
# With the live archives, astroquery gives the same cloud URIs from its MAST product lists (marked
# `remote_data`, it does not run offline):

# %%
#| remote_data
if la is None and "panstarrs" in surveys:
    from astroquery.mast import Observations
    obs = Observations.query_region(position, radius=search_radius_deg * u.deg)
    prods = Observations.filter_products(Observations.get_product_list(obs[obs["obs_collection"] == "PS1"][:1]), extension="fits")
    Observations.enable_cloud_dataset(provider="AWS")
    print(Observations.get_cloud_uris(prods)[:3])

# %% [markdown]
# ## HEASARC Chandra: SIA -> DataLink `#this` -> S3 -> image

# %%
if "chandra" in surveys:
    cxo = pyvo.dal.SIAService(conf.heasarc_sia).search(pos=(ra, dec), size=2 * search_radius_deg)
    print(f"{len(cxo)} Chandra image(s)")
    links = next(cxo.iter_datalinks())
    uri = cloud_uri(links)
    print("cloud copy:", uri)
    save_cutout(cutout(uri, position, size), "chandra_image", f"Chandra ObsID {cxo[0]['obsid']} ({target})")

# %% [markdown]
# ## ROSAT: a `.Z` events file from the HEASARC archive tree
#
# Old missions ship Unix-compressed files; `open_fits` inflates them (unlzw3). Events are binned
# into an image; a file that holds an image instead is shown as is.

# %%
if "rosat" in surveys:
    ros = tap_query("heasarc", "SELECT seq_id, instrument, exposure, ra, dec, name FROM rosmaster WHERE "
                    f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 1.0)) = 1 ORDER BY exposure DESC")
    print(ros)
    pspc = ros[[str(i).startswith("PSPC") for i in ros["instrument"]]]
    pick = (pspc if len(pspc) else ros)[0]
    uri = rosat_events_uri(pick["seq_id"], pick["instrument"])
    print("events file:", uri)
    with open_fits(uri) as h:
        events = next((x for x in h if getattr(x, "columns", None) is not None and {"X", "Y"} <= set(x.columns.names)), None)
        if events is not None:
            img, _, _ = np.histogram2d(events.data["Y"], events.data["X"], bins=256)
            what = f"{len(events.data)} events binned"
        else:
            img = h[0].data.astype(float)
            what = f"image HDU {img.shape} (no events table in this file: {h[0].header.get('MWNBDEMO', h[0].header.get('OBJECT', ''))})"
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(img, origin="lower", cmap="magma", norm=simple_norm(img, "asinh", percent=99.5))
    ax.set_title(f"ROSAT {pick['instrument']} {pick['seq_id']}: {what}"[:80], fontsize=8)
    fig.savefig(out / "rosat_image.png", dpi=110, bbox_inches="tight"); plt.show()
    products.append(("rosat_image", "", "rosat_image.png", what))

# %% [markdown]
# ## Products

# %%
summary = Table(rows=products, names=["product", "fits", "png", "description"])
summary.meta.update(target=target, ra=ra, dec=dec, archive=archive_note())
summary.write(out / "products.ecsv", overwrite=True)
summary
