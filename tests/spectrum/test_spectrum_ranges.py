from importlib import resources

import pytest
import yaml

from torchgeo_smarties.spectrum import (
    AGGREGATED_RANGES,
    LEARNED_RANGES,
    NO_PROJECTION_RANGES,
    NUM_LEARNED_RANGES,
    PROJECTION_SCALER,
    all_ranges,
    range_by_index,
    range_by_key,
)

# The release's table (official-release.md §1), typed in here on purpose so that a
# change to the bundled YAML or to the loader makes these tests fail.
EXPECTED_LEARNED = [
    (0, 'aerosol', 422, 463),
    (1, 'blue_1', 427, 558),
    (2, 'blue_3', 430, 545),
    (3, 'green_1', 466, 620),
    (4, 'green_2', 524, 595),
    (5, 'red_1', 590, 710),
    (6, 'red_2', 634, 696),
    (7, 'red_edge_1', 689, 719),
    (8, 'red_edge_2', 726, 755),
    (9, 'near_infrared_1', 728, 938),
    (10, 'near_infrared_2', 761, 802),
    (11, 'near_infrared_3', 843, 886),
    (12, 'short_wave_infrared_1', 923, 964),
    (13, 'short_wave_infrared_3', 1516, 1704),
    (14, 'short_wave_infrared_4', 2002, 2376),
    (15, 'microwave_1', 5.5e7, 5.6e7),
    (16, 'microwave_2', 5.5e7, 5.6e7),
]


def _release_yaml() -> dict[str, dict[str, object]]:
    text = (
        resources.files('torchgeo_smarties')
        .joinpath('data/release/electromagnetic_spectrum.yaml')
        .read_text(encoding='utf-8')
    )
    data: dict[str, dict[str, object]] = yaml.safe_load(text)
    return data


def test_seventeen_learned() -> None:
    assert NUM_LEARNED_RANGES == 17
    assert len(LEARNED_RANGES) == 17
    assert [r.index for r in LEARNED_RANGES] == list(range(17))
    assert PROJECTION_SCALER == 12.0


def test_learned_table_matches_reference() -> None:
    got = [(r.index, r.key, r.min_nm, r.max_nm) for r in LEARNED_RANGES]
    assert got == [(i, k, float(lo), float(hi)) for i, k, lo, hi in EXPECTED_LEARNED]
    for r in LEARNED_RANGES:
        assert isinstance(r.min_nm, float) and isinstance(r.max_nm, float)
        assert r.kind == 'learned'


def test_matches_release_yaml() -> None:
    data = _release_yaml()
    assert len(data) == 20  # 17 learned + 2 aggregated + 1 without projection
    for key, spec in data.items():
        r = range_by_key(key)
        assert r.index == int(spec['projection_idx'])  # type: ignore[call-overload]
        # YAML 1.1 reads 5.5e7 as a string; the loader must convert it
        assert r.min_nm == float(spec['min_wavelength'])  # type: ignore[arg-type]
        assert r.max_nm == float(spec['max_wavelength'])  # type: ignore[arg-type]
        assert r.sources == tuple(spec['agg_projections'] or ())  # type: ignore[arg-type]
    assert isinstance(data['microwave_1']['min_wavelength'], str)  # the quirk is real


def test_release_order_b08_b07() -> None:
    # Not S2 band order: B08 is 9, B07 is 10.
    assert range_by_index(9).name.startswith('B08')
    assert range_by_index(10).name.startswith('B07')


def test_centres() -> None:
    assert range_by_key('aerosol').center_nm == 442.5
    assert range_by_key('blue_1').center_nm == 492.5
    assert range_by_key('blue_2').center_nm == 482.0
    assert range_by_key('short_wave_infrared_4').center_nm == 2189.0
    assert range_by_key('thermal_infrared_1').center_nm == 10895.0
    assert range_by_key('microwave_1').center_nm == 5.55e7


def test_aggregated_entries() -> None:
    assert [(r.index, r.key, r.sources) for r in AGGREGATED_RANGES] == [
        (17, 'thermal_infrared_1', (14, 15)),
        (18, 'blue_2', (0, 1)),
    ]
    blue = range_by_index(18)
    assert blue.official_weights() == pytest.approx((0.79, 0.21), abs=1e-12)
    thermal = range_by_index(17)
    assert thermal.official_weights() == pytest.approx((1.5687105e-4, 0.99984313), rel=1e-6)
    # proportional to distance: the FARTHER layer gets the larger weight
    assert thermal.official_weights()[1] > thermal.official_weights()[0]
    for r in AGGREGATED_RANGES:
        assert sum(r.official_weights()) == pytest.approx(1.0)


def test_no_projection_entry() -> None:
    assert len(NO_PROJECTION_RANGES) == 1
    r = NO_PROJECTION_RANGES[0]
    assert (r.index, r.key, r.min_nm, r.max_nm) == (-1, 'short_wave_infrared_2', 1345.0, 1406.0)
    assert r.official_weights() == ()
    assert all_ranges()[-1] is r


def test_ranges_are_centre_plus_minus_full_fwhm() -> None:
    # Release quirk (issue #2): S2 B02 (FWHM 65.5 nm) is 492.5 ± 65.5.
    r = range_by_key('blue_1')
    assert (r.center_nm - r.min_nm, r.max_nm - r.center_nm) == (65.5, 65.5)


def test_lookup_errors() -> None:
    with pytest.raises(KeyError, match='valid'):
        range_by_key('ultraviolet')
    with pytest.raises(KeyError, match='19'):
        range_by_index(19)
