from collections.abc import Iterator

import pytest

from torchgeo_smarties.errors import (
    AmbiguousBandError,
    DuplicateRegistrationError,
    EmptyBandListError,
    UnitError,
    UnknownBandError,
    UnknownPresetError,
    UnknownSensorError,
)
from torchgeo_smarties.spectrum import (
    Band,
    get_band,
    get_sensor,
    list_presets,
    list_sensors,
    plan_bands,
    register_preset,
    register_sensor,
    resolve_bands,
    unregister_sensor,
)
from torchgeo_smarties.spectrum.registry import PRESETS

SENSOR_IDS = (
    'sentinel2', 'sentinel1', 'maxar', 'worldview2', 'worldview3', 'landsat4', 'landsat5', 'landsat7', 'landsat8',
    'landsat9', 'planetscope', 'superdove', 'hls_s30', 'hls_l30',
)  # fmt: skip


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Sensor ids to unregister after the test."""
    ids: list[str] = []
    yield ids
    for sid in ids:
        try:
            unregister_sensor(sid)
        except UnknownSensorError:
            pass


def test_builtin_sensors() -> None:
    assert {s.id for s in list_sensors()} >= set(SENSOR_IDS)
    assert [b.name for b in get_sensor('sentinel2').bands] == [
        'B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11', 'B12'
    ]  # fmt: skip
    assert [b.name for b in get_sensor('sentinel1').bands] == ['VV', 'VH', 'HH', 'HV']
    assert [b.name for b in get_sensor('landsat8').bands] == [f'B{i}' for i in range(1, 12)]
    assert len(get_sensor('worldview3').bands) == 8
    assert len(get_sensor('planetscope').bands) == 4
    assert len(get_sensor('superdove').bands) == 8


@pytest.mark.parametrize(
    ('spec', 'expected'),
    [
        ('sentinel2:B08', 'sentinel2:B08'),
        ('SENTINEL2:b08', 'sentinel2:B08'),
        ('s2:b8a', 'sentinel2:B8A'),
        ('Sentinel-2:nir08', 'sentinel2:B8A'),
        ('s2:nir', 'sentinel2:B08'),
        ('sentinel1:vv', 'sentinel1:VV'),
        ('s1:VH', 'sentinel1:VH'),
        ('maxar:red', 'maxar:red'),
        ('rgb:R', 'maxar:red'),
        ('landsat8:B10', 'landsat8:B10'),
        ('l8:lwir11', 'landsat8:B10'),
        ('landsat8:swir16', 'landsat8:B6'),
        ('hls_l30:B05', 'hls_l30:B05'),
        ('HLS-L30:nir', 'hls_l30:B05'),
    ],
)
def test_get_band(spec: str, expected: str) -> None:
    assert get_band(spec).id == expected


def test_band_physics() -> None:
    b08 = get_band('sentinel2:B08')
    assert (b08.center_nm, b08.fwhm_nm, b08.gsd_m) == (832.8, 106.0, 10.0)
    assert b08.learned_index == 9
    assert get_band('sentinel2:B07').learned_index == 10
    assert get_band('sentinel2:B10').release_index == -1
    assert get_band('sentinel2:B10').learned_index is None
    vv = get_band('sentinel1:VV')
    assert vv.center_nm == pytest.approx(5.5466e7, rel=1e-4)
    assert vv.is_sar and vv.polarization == 'VV'
    l8b10 = get_band('landsat8:B10')
    assert (l8b10.min_nm, l8b10.max_nm, l8b10.center_nm) == (10600, 11190, 10895)
    assert l8b10.release_index == 17
    assert get_band('landsat8:B2').release_index == 18
    assert get_band('landsat9:B2').release_index is None  # the release names Landsat-8 only


def test_ambiguous_alias() -> None:
    with pytest.raises(AmbiguousBandError) as info:
        get_band('sentinel2:rededge')
    msg = str(info.value)
    for b in ('sentinel2:B05', 'sentinel2:B06', 'sentinel2:B07'):
        assert b in msg
    assert 'explicitly' in msg


def test_unknown_sensor() -> None:
    with pytest.raises(UnknownSensorError) as info:
        get_band('sentinel3:B01')
    msg = str(info.value)
    assert 'sentinel2' in msg and 'landsat8' in msg and 'register_sensor' in msg


def test_unknown_sensor_suggestion() -> None:
    with pytest.raises(UnknownSensorError, match='did you mean'):
        get_sensor('sentinal2')


def test_unknown_band() -> None:
    with pytest.raises(UnknownBandError) as info:
        get_band('sentinel2:B13')
    assert 'B8A' in str(info.value) and 'B12' in str(info.value)


def test_band_without_sensor() -> None:
    with pytest.raises(UnknownBandError, match='sentinel2:B08'):
        get_band('B08')


def test_band_wrong_type() -> None:
    with pytest.raises(UnknownBandError, match='string'):
        get_band(8)  # type: ignore[arg-type]


def test_band_object_passthrough() -> None:
    b = get_band('sentinel2:B04')
    assert get_band(b) is b


@pytest.mark.parametrize('bands', [[], (), '', ' , '])
def test_empty_list(bands: list[str] | str) -> None:
    with pytest.raises((EmptyBandListError, UnknownPresetError)) as info:
        resolve_bands(bands)
    assert isinstance(info.value, ValueError)


def test_empty_list_message() -> None:
    with pytest.raises(EmptyBandListError, match='at least one band'):
        resolve_bands([])


def test_presets() -> None:
    presets = list_presets()
    assert len(presets['sentinel2_l2a']) == 12
    assert len(presets['sentinel2_l1c']) == 13
    assert 'sentinel2:B10' not in presets['sentinel2_l2a']
    assert presets['sentinel1'] == ('sentinel1:VV', 'sentinel1:VH')
    assert presets['maxar_rgb'] == ('maxar:red', 'maxar:green', 'maxar:blue')
    assert len(presets['landsat8']) == 11
    l2a = resolve_bands('sentinel2_l2a')
    assert [b.learned_index for b in l2a] == [0, 1, 4, 6, 7, 8, 10, 9, 11, 12, 13, 14]
    # EuroSAT-MS tif order (B8A last) maps as the release maps it
    eurosat = [b.learned_index for b in resolve_bands('eurosat') if b.learned_index is not None]
    assert eurosat == [0, 1, 4, 6, 7, 8, 10, 9, 12, 13, 14, 11]


def test_resolve_forms() -> None:
    assert [b.id for b in resolve_bands('maxar')] == ['maxar:red', 'maxar:green', 'maxar:blue']
    assert [b.id for b in resolve_bands('s2:B04, s2:B03')] == ['sentinel2:B04', 'sentinel2:B03']
    assert [b.id for b in resolve_bands('s1:vv')] == ['sentinel1:VV']
    assert [b.id for b in resolve_bands(['s2:b02', get_band('s1:vh')])] == ['sentinel2:B02', 'sentinel1:VH']


def test_unknown_preset() -> None:
    with pytest.raises(UnknownPresetError) as info:
        resolve_bands('sentinel2_l3')
    assert 'sentinel2_l2a' in str(info.value)


def test_register_sensor_and_plan(cleanup: list[str]) -> None:
    cleanup.append('mysat')
    sensor = register_sensor(
        'MySat',
        {
            'blue': {'center': 0.49, 'fwhm': 0.06, 'unit': 'um', 'gsd': 5},
            'nir': {'min': 780, 'max': 900, 'unit': 'nm', 'aliases': ['b4']},
        },
        aliases=['my-sat'],
    )
    assert sensor.id == 'mysat'
    blue = get_band('MY_SAT:BLUE')
    assert blue.center_nm == pytest.approx(490.0)
    assert (blue.min_nm, blue.max_nm) == pytest.approx((460.0, 520.0))
    assert blue.gsd_m == 5.0
    assert get_band('mysat:b4').center_nm == 840.0
    assert 'mysat' in {s.id for s in list_sensors()}
    plan = plan_bands(['mysat:blue', 'mysat:nir'])
    assert plan.bands == ('mysat:blue', 'mysat:nir')
    # blue at 490 nm lies between blue_3 (487.5) and blue_1 (492.5): equal weights
    assert plan.entries[0].indices == (2, 1)
    assert plan.entries[0].weights == pytest.approx((0.5, 0.5))
    # nir at 840 nm: between near_infrared_1 (833) and near_infrared_3 (864.5)
    assert plan.entries[1].indices == (9, 11)
    assert plan.entries[1].weights == pytest.approx(((864.5 - 840) / 31.5, (840 - 833) / 31.5))
    assert plan_bands(['mysat:nir'], policy='nearest').entries[0].indices == (9,)


def test_register_sensor_with_band_objects(cleanup: list[str]) -> None:
    cleanup.append('copy_s2')
    # copying Sentinel-2 bands: the copy is NOT learned (learned indices are cleared)
    src = get_sensor('sentinel2').bands[:2]
    sensor = register_sensor('copy_s2', src)
    assert [b.id for b in sensor.bands] == ['copy_s2:B01', 'copy_s2:B02']
    assert all(b.learned_index is None for b in sensor.bands)


def test_register_preset(cleanup: list[str]) -> None:
    register_preset('my_rgb', ['s2:red', 's2:green', 's2:blue'])
    try:
        assert list_presets()['my_rgb'] == ('sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02')
        assert [b.learned_index for b in resolve_bands('my_rgb')] == [6, 4, 1]
        with pytest.raises(DuplicateRegistrationError, match='overwrite=True'):
            register_preset('my_rgb', ['s2:red'])
        register_preset('my_rgb', ['s2:red'], overwrite=True)
        assert list_presets()['my_rgb'] == ('sentinel2:B04',)
    finally:
        PRESETS.pop('my_rgb', None)


def test_duplicate_registration(cleanup: list[str]) -> None:
    cleanup.append('dupsat')
    register_sensor('dupsat', {'red': {'center': 665, 'unit': 'nm'}})
    with pytest.raises(DuplicateRegistrationError, match='unregister_sensor'):
        register_sensor('dupsat', {'red': {'center': 665, 'unit': 'nm'}})
    with pytest.raises(DuplicateRegistrationError, match='sentinel2'):
        register_sensor('other', {'red': {'center': 665, 'unit': 'nm'}}, aliases=['s2'])
    with pytest.raises(UnknownSensorError):
        get_sensor('other')  # a failed registration leaves nothing behind


def test_duplicate_band_names() -> None:
    with pytest.raises(DuplicateRegistrationError, match='more than once'):
        register_sensor('twinsat', [get_band('s2:B04'), Band('x', 'b04', 665.0, 650.0, 680.0, None, '')])
    with pytest.raises(UnknownSensorError):
        get_sensor('twinsat')


def test_register_requires_unit() -> None:
    with pytest.raises(UnitError, match='no unit'):
        register_sensor('nounit', {'red': {'center': 665}})
    with pytest.raises(UnitError, match='unknown wavelength unit'):
        register_sensor('badunit', {'red': {'center': 665, 'unit': 'nanometers'}})
    with pytest.raises(UnitError, match='"center"'):
        register_sensor('noband', {'red': {'unit': 'nm'}})
    with pytest.raises(EmptyBandListError):
        register_sensor('nobands', {})
    for sid in ('nounit', 'badunit', 'noband', 'nobands'):
        with pytest.raises(UnknownSensorError):
            get_sensor(sid)


def test_unregister_builtin() -> None:
    with pytest.raises(DuplicateRegistrationError, match='built in'):
        unregister_sensor('sentinel2')
    assert get_sensor('sentinel2').id == 'sentinel2'


def test_band_dataclass() -> None:
    b = Band('x', 'y', 500.0, 490.0, 510.0, 10.0, 'DN')
    assert b.id == 'x:y' and b.fwhm_nm == 20.0 and not b.is_sar
