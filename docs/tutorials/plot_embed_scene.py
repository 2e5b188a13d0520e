"""
Embed a scene
=============

Dense SMARTIES embeddings of a GeoTIFF, as a GeoTIFF on the 16-px patch grid: one band per embedding channel, the
input's CRS, the transform × 16. This runs on the bundled CC0 Sentinel-2 L1C crop (384 × 384 px, 13 bands) with the
bundled demo weights (a tiny model; use ``weights='SMARTIESBase16_Weights.SENTINEL2_L1C_SMARTIES'`` for the real
ViT-B once its file is on disk).
"""

# %%
# Embed
# -----
# ``sensor=`` names the raster's bands in order; the normalisation (the release's L1C statistics) follows from the
# bands. The command-line equivalent is ``smarties embed --sample sentinel2 -o out/``.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio

from torchgeo_smarties.inference import embed_raster
from torchgeo_smarties.inference.cli import SAMPLES

out = Path(tempfile.mkdtemp())
result = embed_raster(SAMPLES['sentinel2'], out / 'embeddings.tif', weights='demo', sensor='sentinel2_l1c',
                      preview=out / 'preview.png', progress=False, log=lambda _: None)
print(result.output.name, result.shape)

# %%
# What was written
# ----------------
# The embedding raster keeps the georeferencing and records how it was made in its tags.
with rasterio.open(result.output) as ds:
    emb = ds.read()
    print(ds.crs, ds.transform.a, ds.count, 'bands')
    for key in ('SMARTIES_WEIGHTS', 'SMARTIES_LAYER'):
        print(key, '=', ds.tags()[key])
print('finite:', bool(np.isfinite(emb).all()))

# %%
# The preview: true colour next to the first three principal components of the embeddings.
plt.figure(figsize=(8, 4))
plt.imshow(plt.imread(result.preview))
plt.axis('off')
plt.show()
