import dataclasses

import pytest

from deeprx.core import config


def test_every_preset_is_constructible_and_consistent():
    for name, preset in config.PRESETS.items():
        assert preset.name == name
        scenario = preset.scenario
        assert scenario.grid_shape == (14, 12 * scenario.carrier.num_prb)
        assert scenario.num_input_channels == 2 * (2 * scenario.num_rx + 1)
    paper = config.get_preset("paper").scenario
    assert (paper.carrier.num_prb, paper.modulation, paper.bits_per_symbol) == (26, "256qam", 8)
    assert paper.carrier.num_subcarriers == 312


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        config.get_preset("huge")


@pytest.mark.parametrize("build, setting", [
    (lambda: config.CarrierConfig(num_prb=0), "num_prb"),
    (lambda: config.CarrierConfig(subcarrier_spacing_khz=60), "subcarrier_spacing_khz"),
    (lambda: config.ScenarioConfig(modulation="8psk"), "modulation"),
    (lambda: config.ScenarioConfig(num_rx=3), "num_rx"),
    (lambda: config.DMRSConfig(num_symbols=3), "num_dmrs"),
    (lambda: config.ChannelConfig(family="rayleigh"), "channel"),
    (lambda: config.ChannelConfig(train_models=("A", "B"), test_models=("B",)), "disjoint"),
    (lambda: config.ChannelConfig(test_models=("F",)), "test_models"),
    (lambda: config.ChannelConfig(speed_mps=(10.0, 5.0)), "speed_mps"),
    (lambda: config.InterfererConfig(sir_db=(30.0, 10.0)), "sir_db"),
    (lambda: config.EvalConfig(sinr_db=()), "sinr_db"),
    (lambda: config.EvalConfig(batch_size=0), "batch_size"),
])
def test_bad_settings_raise_value_error_naming_the_setting(build, setting):
    with pytest.raises(ValueError, match=setting):
        build()


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.CarrierConfig().num_prb = 3


def test_sinr_grid_parsing():
    assert config.parse_sinr_grid("-4:4:2") == (-4.0, -2.0, 0.0, 2.0, 4.0)
    assert config.parse_sinr_grid("0:5:2") == (0.0, 2.0, 4.0)
    assert config.parse_sinr_grid("3:3:1") == (3.0,)
    for bad, message in (("4:0:1", "inverted"), ("0:4:0", "positive"), ("0:4", "LO:HI:STEP"),
                         ("a:b:c", "numbers")):
        with pytest.raises(ValueError, match=message):
            config.parse_sinr_grid(bad)


def test_dmrs_positions_and_data_bits():
    one = config.ScenarioConfig(carrier=config.CarrierConfig(num_prb=2))
    two = dataclasses.replace(one, dmrs=config.DMRSConfig(num_symbols=2))
    assert one.dmrs.positions == (2,) and two.dmrs.positions == (2, 11)
    assert one.data_bits_per_slot == 13 * 24 * 4
    assert two.data_bits_per_slot == 12 * 24 * 4


def test_configs_come_back_from_their_saved_dicts():
    for preset in config.PRESETS.values():
        for cls, value in ((config.ScenarioConfig, preset.scenario), (config.EvalConfig, preset.evaluation),
                           (config.TrainConfig, config.TrainConfig())):
            assert config.from_dict(cls, config.to_dict(value)) == value
    saved = config.to_dict(config.get_preset("cpu").evaluation)
    del saved["interference_share"]  # saved before the field existed: its default
    assert config.from_dict(config.EvalConfig, saved).interference_share is None
    with pytest.raises(ValueError, match="no field"):
        config.from_dict(config.EvalConfig, dict(saved, sinr=1))
    with pytest.raises(ValueError, match="batch_size"):
        config.from_dict(config.EvalConfig, dict(saved, batch_size=0))
