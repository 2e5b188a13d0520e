from collections.abc import Iterator

import pytest

from torchgeo_smarties import errors
from torchgeo_smarties.errors import EmptyBandListError, OutOfSpectrumError, SmartiesError, UnresolvableBandError
from torchgeo_smarties.spectrum import (
    POLICIES,
    ProjectionPlan,
    get_band,
    plan_bands,
    register_sensor,
    resolve_band,
    unregister_sensor,
)

S2_L2A_INDICES = [0, 1, 4, 6, 7, 8, 10, 9, 11, 12, 13, 14]


@pytest.fixture
def odd_sensors() -> Iterator[None]:
    """An L-band SAR (23.6 cm, with and without polarisation) and a 350 nm UV band."""
    register_sensor(
        'lband',
        {
            'HH': {'center': 23.6, 'unit': 'cm', 'polarization': 'HH'},
            'HV': {'center': 1.27, 'unit': 'GHz', 'polarization': 'HV'},
            'raw': {'center': 0.236, 'unit': 'm'},
        },
    )
    register_sensor('uvsat', {'uv': {'center': 350, 'fwhm': 20, 'unit': 'nm'}})
    yield
    unregister_sensor('lband')
    unregister_sensor('uvsat')


@pytest.mark.parametrize('policy', POLICIES)
def test_learned_bands_map_exactly(policy: str) -> None:
    plan = plan_bands('sentinel2_l2a', policy=policy)  # type: ignore[arg-type]
    assert [e.indices for e in plan.entries] == [(i,) for i in S2_L2A_INDICES]
    assert all(e.weights == (1.0,) and e.how == 'learned' for e in plan.entries)
    assert [e.indices for e in plan_bands('sentinel1', policy=policy).entries] == [(15,), (16,)]  # type: ignore[arg-type]
    assert [e.indices for e in plan_bands('maxar_rgb', policy=policy).entries] == [(5,), (3,), (2,)]  # type: ignore[arg-type]


def test_sentinel2_b10_ignored() -> None:
    plan = plan_bands('sentinel2_l1c')
    assert plan.num_bands == 13 and plan.num_active == 12
    b10 = plan.entries[10]
    assert b10.band == 'sentinel2:B10' and b10.ignored and b10.how == 'ignored'
    assert plan.active[10] is False
    assert plan.matrix()[10] == (0.0,) * 17
    assert 'no projection' in b10.describe()


def test_matrix() -> None:
    plan = plan_bands(['landsat8:B2', 'sentinel2:B08'], policy='official')
    m = plan.matrix()
    assert len(m) == 2 and all(len(r) == 17 for r in m)
    assert m[0][0] == pytest.approx(0.79) and m[0][1] == pytest.approx(0.21) and sum(m[0]) == pytest.approx(1)
    assert m[1][9] == 1.0 and sum(m[1]) == 1.0


def test_landsat8_b2_official() -> None:
    e = resolve_band(get_band('landsat8:B2'), 'official')
    assert e.indices == (0, 1)
    assert e.weights == pytest.approx((0.79, 0.21), abs=1e-12)
    assert e.how == 'official'
    assert e.describe() == '0.79·aerosol[0] + 0.21·blue_1[1]'


def test_landsat8_b10_official_is_almost_vv() -> None:
    e = resolve_band(get_band('landsat8:B10'), 'official')
    assert e.indices == (14, 15)
    assert e.weights == pytest.approx((1.5687105e-4, 0.99984313), rel=1e-6)


def test_landsat8_b10_linear_is_almost_swir2() -> None:
    e = resolve_band(get_band('landsat8:B10'), 'linear')
    assert e.indices == (14, 15)
    # inverse distance: w_lo = (c_hi - c) / (c_hi - c_lo)
    w_lo = (5.55e7 - 10895) / (5.55e7 - 2189)
    assert e.weights == pytest.approx((w_lo, 1 - w_lo), rel=1e-12)
    assert e.weights[0] > 0.9998


def test_landsat8_b10_nearest() -> None:
    assert resolve_band(get_band('landsat8:B10'), 'nearest').indices == (14,)


def test_landsat8_b2_linear_and_nearest() -> None:
    b2 = get_band('landsat8:B2')  # 450-515 nm, centre 482.5
    e = resolve_band(b2, 'linear')
    # bracketed by aerosol (442.5) and blue_3 (487.5)
    assert e.indices == (0, 2)
    assert e.weights == pytest.approx((5 / 45, 40 / 45))
    assert resolve_band(b2, 'nearest').indices == (2,)


@pytest.mark.parametrize('band', ['landsat8:B2', 'landsat8:B10', 'landsat8:B4', 'sentinel1:HH'])
def test_learned_policy_refuses_unseen(band: str) -> None:
    with pytest.raises(UnresolvableBandError, match="interpolation='linear'"):
        resolve_band(get_band(band), 'learned')


@pytest.mark.parametrize('band', ['landsat8:B4', 'landsat9:B2', 'planetscope:red', 'sentinel1:HH'])
def test_official_refuses_bands_not_in_release(band: str) -> None:
    with pytest.raises(UnresolvableBandError, match="release's spectral table"):
        resolve_band(get_band(band), 'official')


def test_unknown_policy() -> None:
    with pytest.raises(errors.SpectrumOptionError, match='linear, nearest, official, learned'):
        resolve_band(get_band('s2:B04'), 'cubic')  # type: ignore[arg-type]


@pytest.mark.parametrize('policy', ['linear', 'nearest'])
def test_unlearned_sar_polarisations(policy: str) -> None:
    plan = plan_bands(['sentinel1:HH', 'sentinel1:HV'], policy=policy)  # type: ignore[arg-type]
    assert [e.indices for e in plan.entries] == [(15,), (16,)]


def test_linear_weights_sum_and_bracket() -> None:
    for sensor in ('landsat8', 'planetscope', 'superdove', 'worldview3', 'hls_l30', 'landsat7'):
        for e in plan_bands(sensor).entries:
            assert sum(e.weights) == pytest.approx(1.0)
            assert all(0 <= w <= 1 for w in e.weights)


def test_linear_below_first_centre() -> None:
    # WorldView coastal, 400-450 nm (centre 425): inside the spectrum (>= 422) but below aerosol's centre
    e = resolve_band(get_band('worldview3:coastal'), 'linear')
    assert e.indices == (0,) and e.weights == (1.0,)


def test_out_of_spectrum(odd_sensors: None) -> None:
    for band in ('lband:HH', 'lband:HV', 'lband:raw', 'uvsat:uv'):
        for policy in ('linear', 'nearest'):
            with pytest.raises(OutOfSpectrumError) as info:
                resolve_band(get_band(band), policy)  # type: ignore[arg-type]
            assert 'out_of_range="nearest"' in str(info.value)
    with pytest.raises(OutOfSpectrumError):
        plan_bands(['sentinel2:B04', 'uvsat:uv'])


def test_out_of_spectrum_fallback(odd_sensors: None) -> None:
    plan = plan_bands(['lband:HH', 'lband:HV', 'lband:raw', 'uvsat:uv'], out_of_range='nearest')
    assert [e.indices for e in plan.entries] == [(15,), (16,), (15,), (0,)]
    assert all(e.how == 'nearest (out of range)' for e in plan.entries)


def test_empty_plan() -> None:
    with pytest.raises(EmptyBandListError):
        plan_bands([])
    with pytest.raises(EmptyBandListError, match='projected band'):
        plan_bands(['sentinel2:B10'])


def test_plan_is_hashable_and_passthrough() -> None:
    a = plan_bands('sentinel2_l2a')
    b = plan_bands('sentinel2_l2a')
    assert a == b and hash(a) == hash(b)
    assert plan_bands(a) is a
    assert isinstance(a, ProjectionPlan)
    assert a != plan_bands('sentinel2_l2a', policy='nearest')
    assert len(a.describe().splitlines()) == 12


def test_every_error_is_a_value_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, Warning):  # the typed warnings (unit slip, absorption band) are UserWarnings
            assert issubclass(cls, UserWarning) and name.endswith('Warning'), name
            continue
        assert issubclass(cls, SmartiesError) and issubclass(cls, ValueError), name
