"""Sensors and their bands, from the instruments' official specifications.

Each :class:`Band` carries its physical centre wavelength and bandwidth (nm),
native ground sampling distance (m) and the unit of the values products usually
deliver. Sources:

* Sentinel-2 MSI: ESA Sentinel-2 User Handbook / S2A spectral response (centre, bandwidth).
* Sentinel-1 C-SAR: 5.405 GHz centre frequency (λ ≈ 5.547 cm), IW GRD 10 m.
* Maxar RGB: the VHR RGB product SMARTIES was pretrained on (fMoW); its ranges are the
  release's own (``red_1``, ``green_1``, ``blue_3``).
* WorldView-2/3: DigitalGlobe/Maxar spectral band specifications (8 VNIR bands).
* Landsat 8/9 OLI/TIRS(-2), Landsat 7 ETM+, Landsat 4–5 TM: USGS band designations.
* PlanetScope PS2 (4 bands) and SuperDove PSB.SD (8 bands): Planet imagery specification.
* HLS v2.0 S30/L30: NASA HLS user guide band names (S30 = Sentinel-2 MSI bands,
  L30 = Landsat OLI/TIRS bands).

``learned_index`` marks bands whose data the released model was trained on (S2, S1 VV/VH,
Maxar RGB); ``release_index`` is the band's entry in the release's spectral table,
when the release has one (it also covers Landsat-8 B2/B10 and S2 B10).
"""

import math
from dataclasses import dataclass, field
from typing import Final

from ..errors import BandDefinitionError, PolarizationError

__all__ = ('MICROWAVE_NM', 'POLARIZATIONS', 'WATER_VAPOUR_WINDOWS_NM', 'Band', 'Sensor', 'builtin_sensors')

#: Wavelengths at or above this (1 mm) are microwave: only these bands may carry a polarisation.
MICROWAVE_NM: Final = 1e6

#: Water-vapour absorption windows (nm): bands centred here are flagged ``absorption`` in band tables.
WATER_VAPOUR_WINDOWS_NM: Final = ((1350.0, 1450.0), (1800.0, 1950.0))

#: Valid SAR polarisations (transmit/receive).
POLARIZATIONS: Final = ('VV', 'VH', 'HH', 'HV')


@dataclass(frozen=True)
class Band:
    """One spectral band (or SAR polarisation) of a sensor.

    Attributes:
        sensor: sensor id, e.g. ``'sentinel2'``.
        name: canonical band name, e.g. ``'B08'``.
        center_nm: centre wavelength in nm.
        min_nm: lower edge in nm (centre − FWHM/2 for optical bands).
        max_nm: upper edge in nm.
        gsd_m: native ground sampling distance in metres.
        units: what the product's pixel values are (e.g. reflectance ×10000).
        description: human-readable label.
        learned_index: the learned SMARTIES projection this band's data trained, if any.
        release_index: the band's entry in the release's spectral table, if any
            (−1 means "the release gives it no projection").
        polarization: SAR polarisation (``'VV'``, ``'VH'``, ``'HH'``, ``'HV'``) or ``None``.
        aliases: other accepted names (case-insensitive), e.g. STAC common names.
        absorption: whether the band lies in a water-vapour absorption window
            (≈1.35–1.45 µm, ≈1.8–1.95 µm); such bands are left out of the sensor's
            default band set.

    Raises:
        BandDefinitionError: for non-finite or non-positive wavelengths, ``min_nm > max_nm``,
            a centre outside ``[min_nm, max_nm]`` or a non-positive GSD.
        PolarizationError: for a polarisation on an optical band or an unknown polarisation.
    """

    sensor: str
    name: str
    center_nm: float
    min_nm: float
    max_nm: float
    gsd_m: float | None
    units: str
    description: str = ''
    learned_index: int | None = None
    release_index: int | None = None
    polarization: str | None = None
    aliases: tuple[str, ...] = ()
    absorption: bool = False

    def __post_init__(self) -> None:
        where = f'band {self.sensor}:{self.name}'
        values = {'center_nm': self.center_nm, 'min_nm': self.min_nm, 'max_nm': self.max_nm}
        for key, value in values.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise BandDefinitionError(f'{where}: {key} must be a positive finite number of nm, got {value!r}')
        if self.min_nm > self.max_nm:
            raise BandDefinitionError(
                f'{where}: min_nm {self.min_nm:g} > max_nm {self.max_nm:g}; give the lower edge first'
            )
        # a relative tolerance: centres computed as (lo + hi) / 2 in another unit may round just outside
        tol = 1e-9 * self.max_nm
        if not (self.min_nm - tol <= self.center_nm <= self.max_nm + tol):
            raise BandDefinitionError(
                f'{where}: centre {self.center_nm:g} nm lies outside its edges {self.min_nm:g}–{self.max_nm:g} nm'
            )
        if self.gsd_m is not None and not (
            isinstance(self.gsd_m, int | float) and math.isfinite(self.gsd_m) and self.gsd_m > 0
        ):
            raise BandDefinitionError(f'{where}: gsd_m must be a positive number of metres or None, got {self.gsd_m!r}')
        if self.polarization is not None:
            if self.polarization not in POLARIZATIONS:
                raise PolarizationError(
                    f'{where}: unknown polarisation {self.polarization!r}; valid: {", ".join(POLARIZATIONS)}'
                )
            if self.center_nm < MICROWAVE_NM:
                raise PolarizationError(
                    f'{where} ({self.center_nm:g} nm) is an optical band but has polarization='
                    f'{self.polarization!r}; a polarisation is only for microwave (SAR) bands (wavelength >= 1 mm): '
                    'drop polarization, or give the radar frequency (e.g. 5.405 GHz)'
                )

    @property
    def id(self) -> str:
        """The band identifier ``'<sensor>:<band>'``."""
        return f'{self.sensor}:{self.name}'

    @property
    def fwhm_nm(self) -> float:
        """Bandwidth (max − min) in nm."""
        return self.max_nm - self.min_nm

    @property
    def is_sar(self) -> bool:
        """Whether this is a microwave (SAR) channel."""
        return self.polarization is not None


@dataclass(frozen=True)
class Sensor:
    """A sensor: an id, a display name, aliases and its bands in canonical order."""

    id: str
    name: str
    bands: tuple[Band, ...]
    aliases: tuple[str, ...] = ()
    description: str = ''
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def default_bands(self) -> tuple[Band, ...]:
        """The band set the sensor id stands for (``resolve_bands('<id>')``).

        Every band except those flagged ``absorption`` and those outside the spectrum
        SMARTIES was pretrained on (e.g. EnMAP B1 at 418 nm, below the aerosol range's
        422 nm): name those explicitly (with ``out_of_range='nearest'``) to use them.
        """
        lo, hi = _pretraining_spectrum()
        return tuple(b for b in self.bands if not b.absorption and lo <= b.center_nm <= hi)


def _pretraining_spectrum() -> tuple[float, float]:
    from .ranges import LEARNED_RANGES

    return min(r.min_nm for r in LEARNED_RANGES), max(r.max_nm for r in LEARNED_RANGES)


def _edges(
    sensor: str,
    name: str,
    lo: float,
    hi: float,
    gsd: float,
    units: str,
    desc: str,
    aliases: tuple[str, ...] = (),
    learned: int | None = None,
    release: int | None = None,
    center: float | None = None,
) -> Band:
    """A band from its edges in nm; *center* defaults to their midpoint (give the published centre if known)."""
    return Band(sensor=sensor, name=name, center_nm=0.5 * (lo + hi) if center is None else center, min_nm=lo,
                max_nm=hi, gsd_m=gsd, units=units, description=desc, learned_index=learned,
                release_index=release if release is not None else learned, aliases=aliases)


_S2_UNITS = 'reflectance ×10000 (L1C TOA / L2A BOA)'
# name, centre, bandwidth (S2A), gsd, learned index (release order: B08 = 9, B07 = 10), aliases
_S2 = (
    ('B01', 442.7, 21, 60, 0, ('b1', 'coastal', 'aerosol')),
    ('B02', 492.4, 66, 10, 1, ('b2', 'blue')),
    ('B03', 559.8, 36, 10, 4, ('b3', 'green')),
    ('B04', 664.6, 31, 10, 6, ('b4', 'red')),
    ('B05', 704.1, 15, 20, 7, ('b5', 'rededge', 'rededge1')),
    ('B06', 740.5, 15, 20, 8, ('b6', 'rededge', 'rededge2')),
    ('B07', 782.8, 20, 20, 10, ('b7', 'rededge', 'rededge3')),
    ('B08', 832.8, 106, 10, 9, ('b8', 'nir')),
    ('B8A', 864.7, 21, 20, 11, ('nir08', 'narrow_nir', 'b8a')),
    ('B09', 945.1, 20, 60, 12, ('b9', 'nir09', 'water_vapour')),
    ('B10', 1373.5, 31, 60, -1, ('cirrus',)),
    ('B11', 1613.7, 91, 20, 13, ('swir16', 'swir1')),
    ('B12', 2202.4, 175, 20, 14, ('swir22', 'swir2')),
)


def _msi_bands(sensor: str, units: str, describe: str, gsd: float | None = None) -> tuple[Band, ...]:
    """The MSI bands of :data:`_S2`: centre ± half the bandwidth, at their own GSD unless *gsd* is given."""
    return tuple(
        _edges(sensor, n, c - w / 2, c + w / 2, g if gsd is None else gsd, units, describe.format(n), a,
               learned=None if k < 0 else k, release=k, center=c)
        for n, c, w, g, k, a in _S2
    )


def _sentinel2() -> Sensor:
    bands = _msi_bands('sentinel2', _S2_UNITS, 'Sentinel-2 MSI {}')
    return Sensor('sentinel2', 'Sentinel-2 MSI', bands, ('s2', 'sentinel-2', 's2msi'),
                  'Sentinel-2A/B/C MultiSpectral Instrument, L1C and L2A products.')


# C-band: 5.405 GHz -> 55.466 mm; the release's range is 5.5–5.6 cm.
_C_BAND_NM = 299_792_458.0 / 5.405e9 * 1e9


def _sentinel1() -> Sensor:
    def sar(name: str, learned: int | None, aliases: tuple[str, ...]) -> Band:
        return Band(
            sensor='sentinel1', name=name, center_nm=_C_BAND_NM, min_nm=5.5e7, max_nm=5.6e7,
            gsd_m=10.0, units='backscatter σ0 in dB (the release normalises dB values)',
            description=f'Sentinel-1 C-SAR GRD {name} (5.405 GHz)', learned_index=learned,
            release_index=learned, polarization=name, aliases=aliases,
        )
    bands = (sar('VV', 15, ('vv',)), sar('VH', 16, ('vh',)), sar('HH', None, ()), sar('HV', None, ()))
    return Sensor('sentinel1', 'Sentinel-1 C-SAR', bands, ('s1', 'sentinel-1'),
                  'Sentinel-1 GRD backscatter; SMARTIES was pretrained on VV and VH in dB.')


def _maxar() -> Sensor:
    u = 'DN 0–255 (8-bit RGB product)'
    bands = (
        _edges('maxar', 'red', 590, 710, 0.5, u, 'VHR RGB red (release red_1)', ('r',), learned=5),
        _edges('maxar', 'green', 466, 620, 0.5, u, 'VHR RGB green (release green_1)', ('g',), learned=3),
        _edges('maxar', 'blue', 430, 545, 0.5, u, 'VHR RGB blue (release blue_3)', ('b',), learned=2),
    )
    return Sensor('maxar', 'Maxar VHR RGB', bands, ('rgb', 'vhr_rgb', 'fmow_rgb'),
                  'The very-high-resolution RGB product SMARTIES was pretrained on (fMoW).')


def _worldview(sid: str, name: str, gsd: float) -> Sensor:
    u = 'DN / TOA reflectance'
    spec = (
        ('coastal', 400, 450), ('blue', 450, 510), ('green', 510, 580), ('yellow', 585, 625),
        ('red', 630, 690), ('rededge', 705, 745), ('nir1', 770, 895), ('nir2', 860, 1040),
    )
    bands = tuple(
        _edges(sid, n, lo, hi, gsd, u, f'{name} MS {n}', (f'b{i + 1}',))
        for i, (n, lo, hi) in enumerate(spec)
    )
    return Sensor(sid, name, bands, (sid.replace('worldview', 'wv'),), f'{name} 8-band multispectral.')


_OLI = 'reflectance (L2 SR: scaled integer) / DN (L1)'
_TIRS = 'brightness/surface temperature (K, scaled integer) / DN'


def _landsat89(sid: str, num: int) -> Sensor:
    rel = sid == 'landsat8'  # the release's table names Landsat-8 only
    spec = (
        ('B1', 433, 453, 30, _OLI, 'coastal aerosol', ('coastal',), None),
        ('B2', 450, 515, 30, _OLI, 'blue', ('blue',), 18 if rel else None),
        ('B3', 525, 600, 30, _OLI, 'green', ('green',), None),
        ('B4', 630, 680, 30, _OLI, 'red', ('red',), None),
        ('B5', 845, 885, 30, _OLI, 'near infrared', ('nir', 'nir08'), None),
        ('B6', 1560, 1660, 30, _OLI, 'SWIR 1', ('swir16', 'swir1'), None),
        ('B7', 2100, 2300, 30, _OLI, 'SWIR 2', ('swir22', 'swir2'), None),
        ('B8', 500, 680, 15, _OLI, 'panchromatic', ('pan',), None),
        ('B9', 1360, 1390, 30, _OLI, 'cirrus', ('cirrus',), None),
        ('B10', 10600, 11190, 100, _TIRS, 'TIRS 1 thermal', ('lwir11', 'tirs1'), 17 if rel else None),
        ('B11', 11500, 12510, 100, _TIRS, 'TIRS 2 thermal', ('lwir12', 'tirs2'), None),
    )
    bands = tuple(
        _edges(sid, n, lo, hi, g, u, f'Landsat {num} {d}', a + (f'b{n[1:]}', f'sr_{n.lower()}', f'b0{n[1:]}'),
               release=r)
        for n, lo, hi, g, u, d, a, r in spec
    )
    return Sensor(sid, f'Landsat {num} OLI/TIRS', bands, (f'l{num}', f'landsat-{num}', f'lc0{num}'),
                  f'Landsat {num} Operational Land Imager and Thermal Infrared Sensor.')


# Landsat TM and ETM+ share band names, roles and aliases; the edges (nm) and GSD (m) differ per instrument
_TM_ROLES = (
    ('B1', 'blue', ('blue',)), ('B2', 'green', ('green',)), ('B3', 'red', ('red',)),
    ('B4', 'near infrared', ('nir',)), ('B5', 'SWIR 1', ('swir16', 'swir1')), ('B6', 'thermal', ('lwir', 'thermal')),
    ('B7', 'SWIR 2', ('swir22', 'swir2')), ('B8', 'panchromatic', ('pan',)),
)


def _tm_bands(sensor: str, label: str, edges: tuple[tuple[float, float, float], ...]) -> tuple[Band, ...]:
    """The first ``len(edges)`` TM / ETM+ bands from their ``(lo, hi, gsd)``; B6 is the thermal band."""
    return tuple(
        _edges(sensor, n, lo, hi, g, _TIRS if n == 'B6' else _OLI, f'{label} {d}', a + (f'b{n[1:]}', f'sr_{n.lower()}'))
        for (n, d, a), (lo, hi, g) in zip(_TM_ROLES, edges, strict=False)
    )


def _landsat_tm(sid: str, num: int) -> Sensor:
    edges = ((450, 520, 30), (520, 600, 30), (630, 690, 30), (760, 900, 30), (1550, 1750, 30), (10400, 12500, 120),
             (2080, 2350, 30))
    return Sensor(sid, f'Landsat {num} TM', _tm_bands(sid, f'Landsat {num} TM', edges),
                  (f'l{num}', f'landsat-{num}', f'lt0{num}'), f'Landsat {num} Thematic Mapper.')


def _landsat7() -> Sensor:
    edges = ((450, 515, 30), (525, 605, 30), (630, 690, 30), (775, 900, 30), (1550, 1750, 30), (10400, 12500, 60),
             (2090, 2350, 30), (520, 900, 15))
    return Sensor('landsat7', 'Landsat 7 ETM+', _tm_bands('landsat7', 'Landsat 7 ETM+', edges),
                  ('l7', 'landsat-7', 'le07'), 'Landsat 7 Enhanced Thematic Mapper Plus.')


def _planetscope() -> Sensor:
    u = 'surface reflectance ×10000'
    spec = (('blue', 455, 515), ('green', 500, 590), ('red', 590, 670), ('nir', 780, 860))
    bands = tuple(_edges('planetscope', n, lo, hi, 3.0, u, f'PlanetScope PS2 {n}', (f'b{i + 1}',))
                  for i, (n, lo, hi) in enumerate(spec))
    return Sensor('planetscope', 'PlanetScope (PS2, 4-band)', bands, ('ps2', 'planet', 'dove'),
                  'PlanetScope Dove Classic 4-band imagery.')


def _superdove() -> Sensor:
    u = 'surface reflectance ×10000'
    spec = (
        ('coastal_blue', 431, 452), ('blue', 465, 515), ('green_i', 513, 549), ('green', 547, 583),
        ('yellow', 600, 620), ('red', 650, 680), ('rededge', 697, 713), ('nir', 845, 885),
    )
    bands = tuple(_edges('superdove', n, lo, hi, 3.0, u, f'SuperDove {n}', (f'b{i + 1}',))
                  for i, (n, lo, hi) in enumerate(spec))
    return Sensor('superdove', 'PlanetScope SuperDove (PSB.SD, 8-band)', bands,
                  ('psb_sd', 'planetscope_sd', 'planetscope8'), 'PlanetScope SuperDove 8-band imagery.')


def _hls_s30() -> Sensor:
    u = 'surface reflectance ×10000 (HLS v2.0, harmonised)'
    # HLS S30 bands are Sentinel-2 MSI bands resampled to 30 m: same spectral bands as S2.
    bands = _msi_bands('hls_s30', u, 'HLS S30 {} (Sentinel-2 MSI)', gsd=30)
    return Sensor('hls_s30', 'HLS S30 (Sentinel-2)', bands, ('hlss30', 'hls-s30'),
                  'Harmonized Landsat Sentinel-2, Sentinel-2 part (MSI bands at 30 m).')


def _hls_l30() -> Sensor:
    u = 'surface reflectance ×10000 (HLS v2.0, harmonised); thermal in °C ×100'
    spec = (
        ('B01', 433, 453, 'coastal aerosol', ('coastal',)), ('B02', 450, 515, 'blue', ('blue',)),
        ('B03', 525, 600, 'green', ('green',)), ('B04', 630, 680, 'red', ('red',)),
        ('B05', 845, 885, 'near infrared', ('nir', 'nir08')), ('B06', 1560, 1660, 'SWIR 1', ('swir16', 'swir1')),
        ('B07', 2100, 2300, 'SWIR 2', ('swir22', 'swir2')), ('B09', 1360, 1390, 'cirrus', ('cirrus',)),
        ('B10', 10600, 11190, 'TIRS 1', ('lwir11',)), ('B11', 11500, 12510, 'TIRS 2', ('lwir12',)),
    )
    bands = tuple(_edges('hls_l30', n, lo, hi, 30, u, f'HLS L30 {n} {d} (Landsat OLI/TIRS)', a)
                  for n, lo, hi, d, a in spec)
    return Sensor('hls_l30', 'HLS L30 (Landsat 8/9)', bands, ('hlsl30', 'hls-l30'),
                  'Harmonized Landsat Sentinel-2, Landsat 8/9 part.')


def builtin_sensors() -> tuple[Sensor, ...]:
    """The sensors shipped with the package, in display order."""
    return (
        _sentinel2(), _sentinel1(), _maxar(),
        _worldview('worldview2', 'WorldView-2', 1.84), _worldview('worldview3', 'WorldView-3', 1.24),
        _landsat_tm('landsat4', 4), _landsat_tm('landsat5', 5), _landsat7(),
        _landsat89('landsat8', 8), _landsat89('landsat9', 9),
        _planetscope(), _superdove(), _hls_s30(), _hls_l30(),
    )
