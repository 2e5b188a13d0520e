"""Typed exceptions raised by torchgeo_smarties.

Every error a user can trigger with bad input is one of these classes. They all
derive from :class:`SmartiesError`, which itself derives from :class:`ValueError`,
so ``except ValueError`` keeps working for callers that do not care about the
details. Each message names the valid choices or the fix.
"""

__all__ = (
    'AmbiguousBandError',
    'BandCountError',
    'CheckpointError',
    'DuplicateRegistrationError',
    'EmptyBandListError',
    'ImageSizeError',
    'InputError',
    'ModelConfigError',
    'OutOfSpectrumError',
    'SmartiesError',
    'UnitError',
    'UnknownBandError',
    'UnknownPresetError',
    'UnknownSensorError',
    'UnresolvableBandError',
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


# --- models
class ModelConfigError(SmartiesError):
    """An encoder/decoder architecture is invalid (e.g. ``embed_dim`` not divisible by ``num_heads``)."""
