"""
Bring your own sensor
=====================

SMARTIES takes any bands: each band goes through the learned projection of its spectral range, and bands between
the learned ranges interpolate. Here a sensor the model never saw is registered at run time, with its value
convention, and a raster of it is embedded without hand-made statistics (see :doc:`/byos`).
"""

# %%
# Register the sensor
# -------------------
# Wavelengths carry units; the value convention says how stored values map to reflectance (here: reflectance
# × 10000, like most surface-reflectance products).
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from torchgeo_smarties.inference import embed_raster
from torchgeo_smarties.spectrum import plan_bands, register_sensor
from torchgeo_smarties.spectrum.conventions import ValueConvention

register_sensor(
    'tutorialsat',
    {'blue': {'center': 0.49, 'fwhm': 0.06, 'unit': 'um'},
     'red': {'center': 660, 'fwhm': 30, 'unit': 'nm'},
     'nir': {'min': 780, 'max': 900, 'unit': 'nm'},
     'swir': {'center': 1.65, 'fwhm': 0.09, 'unit': 'um'}},
    convention=ValueConvention.reflectance(0.0001),
)
bands = ['tutorialsat:blue', 'tutorialsat:red', 'tutorialsat:nir', 'tutorialsat:swir']
print(plan_bands(bands).describe())

# %%
# A raster of that sensor
# -----------------------
# A synthetic 128 × 128 scene in UTM, values like surface reflectance × 10000.
rng = np.random.default_rng(0)
data = (rng.uniform(0.02, 0.4, size=(4, 128, 128)) * 10000).astype(np.uint16)
path = Path(tempfile.mkdtemp()) / 'tutorialsat.tif'
with rasterio.open(path, 'w', driver='GTiff', width=128, height=128, count=4, dtype='uint16', crs='EPSG:32632',
                   transform=from_origin(500000, 5200000, 10, 10)) as ds:
    ds.write(data)

# %%
# Embed it
# --------
# No ``norm=`` and no ``stats=``: the statistics are interpolated in wavelength from the release's own statistics,
# printed, and stored in the output's ``SMARTIES_NORM`` tag so that ``stats=<that output>`` reproduces the run.
messages: list[str] = []
res = embed_raster(path, path.with_name('tutorialsat_embeddings.tif'), weights='demo', bands=','.join(bands),
                   progress=False, log=messages.append)
with rasterio.open(res.output) as ds:
    print(ds.count, 'channels on a', ds.height, '×', ds.width, 'grid;', 'CRS', ds.crs)
    print(ds.tags()['SMARTIES_NORM'][:200], '...')
