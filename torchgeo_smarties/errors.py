"""Typed exceptions raised by torchgeo_smarties.

Every error a user can trigger with bad input is one of these classes. They all
derive from :class:`SmartiesError`, which itself derives from :class:`ValueError`,
so ``except ValueError`` keeps working for callers that do not care about the
details. Each message names the valid choices or the fix.
"""

__all__ = (
    'AbsorptionBandWarning',
    'AmbiguousBandError',
    'BandCountError',
    'BandDefinitionError',
    'BandMismatchError',
    'CheckpointError',
    'ConfigError',
    'ConfigNotFoundError',
    'DatasetRootError',
    'DeviceError',
    'DiskFullError',
    'DuplicateBandError',
    'DuplicateRegistrationError',
    'EmbeddingFileError',
    'EmbeddingIndexError',
    'EmptyBandListError',
    'ImageSizeError',
    'IndexMismatchError',
    'InputError',
    'MissingDependencyError',
    'MissingExtraError',
    'ModelConfigError',
    'NoStatisticsError',
    'NormalizationError',
    'NormalizationMismatchWarning',
    'OptionError',
    'OutOfSpectrumError',
    'OutputError',
    'OutputLockedError',
    'PolarizationError',
    'QueryError',
    'RasterReadError',
    'ResumeError',
    'SarUnitsError',
    'SceneListError',
    'SensorIdError',
    'SensorTableError',
    'SmartiesError',
    'SpectrumOptionError',
    'StacError',
    'StatisticsFileError',
    'UnitError',
    'UnitSlipWarning',
    'UnknownBandError',
    'UnknownPresetError',
    'UnknownSensorError',
    'UnresolvableBandError',
    'UnsupportedRasterError',
    'WeightsArgumentError',
)


class SmartiesError(ValueError):
    """Base class of all torchgeo_smarties input errors."""


class UnknownSensorError(SmartiesError):
    """A sensor name is not in the registry."""


class UnknownBandError(SmartiesError):
    """A band name is not known for its sensor."""


class AmbiguousBandError(SmartiesError):
    """A band name or alias matches more than one band."""


class UnknownPresetError(SmartiesError):
    """A band-set preset name is not known."""


class UnitError(SmartiesError):
    """A wavelength was given without a unit or with an unknown unit."""


class OutOfSpectrumError(SmartiesError):
    """A band lies outside the spectrum SMARTIES was pretrained on."""


class UnresolvableBandError(SmartiesError):
    """A band cannot be resolved under the requested interpolation policy."""


class EmptyBandListError(SmartiesError):
    """A band list is empty, or has no band with a projection."""


class DuplicateRegistrationError(SmartiesError):
    """A sensor or band is registered twice."""


class BandCountError(SmartiesError):
    """The number of image channels does not match the number of bands."""


class ImageSizeError(SmartiesError):
    """The image size is not a multiple of the patch size (or is otherwise invalid)."""


class InputError(SmartiesError):
    """An input tensor has the wrong rank, dtype or content (e.g. NaN)."""


class CheckpointError(SmartiesError):
    """A checkpoint is unreadable, corrupt, or does not match the model."""


# --- spectrum


class SpectrumOptionError(SmartiesError):
    """An enum-like option of the spectrum API (policy, out_of_range, unit) has an invalid value."""


class SensorIdError(SmartiesError):
    """A sensor, alias, band or preset name cannot be used as an identifier (bad characters, or taken by a preset)."""


class PolarizationError(SmartiesError):
    """A polarisation is given for an optical band, or is not one of VV, VH, HH, HV."""


class BandDefinitionError(SmartiesError):
    """A band definition is malformed: unknown field, non-numeric value, min > max, negative FWHM."""


class DuplicateBandError(SmartiesError):
    """The same band appears twice in one band list (each image channel must be a different band)."""


class SensorTableError(BandDefinitionError):
    """A sensor band table (CSV) is unreadable or malformed."""


class UnitSlipWarning(UserWarning):
    """A wavelength lies far from every learned range and from any real band: probably a unit slip (µm for nm)."""


class AbsorptionBandWarning(UserWarning):
    """A band flagged as lying in a water-vapour absorption window was selected explicitly."""
# --- norm
class NormalizationError(InputError):
    """The normalisation cannot be built as asked: conflicting options, no statistics for a band, bad values."""


class NoStatisticsError(NormalizationError):
    """No statistics apply to a band by default (no value convention, or values that are not reflectance)."""


class StatisticsFileError(NormalizationError):
    """A statistics file (JSON/YAML/embedding GeoTIFF) is unreadable, malformed, or lists a band twice."""


class SarUnitsError(NormalizationError):
    """SAR values are in linear power where dB is expected (or the reverse)."""
# --- weights


class WeightsArgumentError(CheckpointError):
    """A ``weights`` argument is none of the accepted forms (bool, null, enum, 'demo', path, URL)."""
# --- sources


class RasterReadError(InputError):
    """A raster cannot be opened or a window of it cannot be read (truncated, corrupt, unreachable, not a raster)."""


class UnsupportedRasterError(InputError):
    """A raster's content cannot be embedded as is (complex samples, no bands, mixed grids)."""


class BandMismatchError(BandCountError):
    """The band names found in the data contradict the bands given by ``--bands`` / ``--sensor``."""


class StacError(InputError):
    """A STAC item or item collection is unreadable or has no usable band assets."""


class MissingExtraError(SmartiesError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` extra."""


class SceneListError(InputError):
    """A multi-scene input (list file, glob, folder of scenes, item collection) is empty, repeats or fails."""
# --- engine
class OptionError(InputError):
    """An inference option has an invalid value, or options contradict each other."""


class DeviceError(OptionError):
    """The requested torch device does not exist or is not available on this machine."""


class OutputError(InputError):
    """An output path cannot be used: it is the input, not a regular file, not writable, or the disk is full."""


class OutputLockedError(OutputError):
    """Another run is writing the same output (its lock file is held)."""


class DiskFullError(OutputError):
    """The device holding an output ran out of space while writing it."""


class ResumeError(InputError):
    """A partial run cannot be resumed: the input, normalisation, weights or options changed, or it is corrupt."""
# --- retrieval
class MissingDependencyError(SmartiesError):
    """An optional dependency a feature needs (e.g. ``faiss-cpu`` for retrieval) is not installed."""


class EmbeddingFileError(InputError):
    """A file given as embeddings is missing, unreadable, empty or not a SMARTIES embedding raster / table."""


class EmbeddingIndexError(SmartiesError):
    """A vector index folder is missing, incomplete or corrupt, or an index option is invalid."""


class IndexMismatchError(EmbeddingIndexError):
    """Vectors do not match an index: another dimension, metric or weights."""


class QueryError(InputError):
    """A search or similarity query is invalid: bad point, unknown CRS, point outside every scene, k <= 0, ..."""
# --- tasks
class ConfigError(InputError):
    """A LightningCLI config (file or command-line override) has an unknown key or an invalid value."""


class ConfigNotFoundError(ConfigError):
    """A ``--config`` value is neither an existing file nor the name of a bundled config."""


class DatasetRootError(InputError):
    """A dataset root does not exist or does not hold the dataset's expected layout."""
# --- models
class ModelConfigError(SmartiesError):
    """An encoder/decoder architecture is invalid (e.g. ``embed_dim`` not divisible by ``num_heads``)."""
# --- tasks
class NormalizationMismatchWarning(UserWarning):
    """A task's data normalisation differs from the one its SMARTIES weights were pretrained with."""
