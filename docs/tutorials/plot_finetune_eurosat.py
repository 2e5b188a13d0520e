"""
Fine-tune on EuroSAT-format data
================================

torchgeo's ``EuroSAT`` layout (13-band 64 × 64 GeoTIFFs in one folder per class, split files beside them) with
:class:`~torchgeo_smarties.tasks.SMARTIESEuroSATDataModule` — torchgeo's data module with the release's normalisation
— and :class:`~torchgeo_smarties.tasks.SMARTIESClassification`. The script writes a tiny EuroSAT-format folder of
synthetic images so that it runs anywhere; point ``root`` at a real EuroSAT download to train for real (and use
``weights='SMARTIESBase16_Weights.SENTINEL2_L1C_SMARTIES'``). The same run from the command line:
``smarties fit --config eurosat_classification --data.init_args.root data/eurosat``.
"""

# %%
# A EuroSAT-format folder
# -----------------------
import tempfile
from pathlib import Path

import lightning
import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from torchgeo_smarties.tasks import SMARTIESClassification, SMARTIESEuroSATDataModule

root = Path(tempfile.mkdtemp())
tif = root / 'ds' / 'images' / 'remote_sensing' / 'otherDatasets' / 'sentinel_2' / 'tif'
rng = np.random.default_rng(0)
classes = ['Forest', 'SeaLake']
splits: dict[str, list[str]] = {'train': [], 'val': [], 'test': []}
for c, name in enumerate(classes):
    (tif / name).mkdir(parents=True)
    for i in range(6):
        level = 1500 + 1500 * c  # the two classes differ in brightness
        img = rng.normal(level, 200, size=(13, 64, 64)).clip(1, 10000).astype(np.uint16)
        fname = f'{name}_{i + 1}.tif'
        with rasterio.open(tif / name / fname, 'w', driver='GTiff', width=64, height=64, count=13, dtype='uint16',
                           crs='EPSG:32632', transform=from_origin(0, 640, 10, 10)) as ds:
            ds.write(img)
        splits['train' if i < 4 else ('val' if i == 4 else 'test')].append(fname.replace('.tif', '.jpg'))
for split, names in splits.items():
    (root / f'eurosat-{split}.txt').write_text('\n'.join(names) + '\n')

# %%
# Data module and task
# --------------------
# The data module replaces torchgeo's ``K.Normalize`` by ``SmartiesNormalize`` with the release's EuroSAT
# statistics; the task builds the SMARTIES encoder for the 13 EuroSAT bands and a linear head.
datamodule = SMARTIESEuroSATDataModule(root=str(root), batch_size=4, num_workers=0)
task = SMARTIESClassification(model='smarties_vit_tiny_patch16', weights='demo', in_channels=13,
                              num_classes=len(classes), lr=1e-3)

# %%
# Train and test
# --------------
torch.manual_seed(0)
trainer = lightning.Trainer(max_epochs=3, accelerator='cpu', logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
trainer.fit(task, datamodule=datamodule)
metrics = trainer.test(task, datamodule=datamodule, verbose=False)[0]
print({k: round(float(metrics[k]), 3) for k in ('test_loss', 'test_OverallAccuracy')})
