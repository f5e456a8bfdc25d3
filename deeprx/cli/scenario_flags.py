"""Scenario flags shared by the CLIs (evaluate, train): a preset and its overrides.

A CLI calls `define_flags()` in its own define_flags(), then `scenario_from_flags(FLAGS)` in main().
"""

import dataclasses

from absl import flags

from deeprx import cli
from deeprx.core import config as config_lib
# Every flag of this module: a CLI that starts other CLIs passes them on (cli.flag_args).
FLAG_NAMES = ("preset", "channel", "modulation", "num_dmrs", "num_rx", "num_prb", "sir_db")


def define_flags():
    """The scenario flags, for a CLI's define_flags()."""
    flags.DEFINE_string("preset", "demo", f"scenario preset: {', '.join(config_lib.PRESETS)}")
    flags.DEFINE_string("channel", None, "override: awgn, cdl or tdl")
    flags.DEFINE_string("modulation", None, "override: qpsk, 16qam, 64qam or 256qam")
    flags.DEFINE_integer("num_dmrs", None, "override: DMRS symbols per slot, 1 or 2")
    flags.DEFINE_integer("num_rx", None, "override: receive antennas, 1, 2 or 4")
    flags.DEFINE_integer("num_prb", None, "override: physical resource blocks")
    flags.DEFINE_string("sir_db", None, "override: interferer SIR range LO:HI in dB, or 'none'")


def parse_pair(text):
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"expected LO:HI, got {text!r}")
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected two numbers LO:HI, got {text!r}") from None


def scenario_from_flags(flag_values):
    """(Preset, ScenarioConfig with the overrides applied); raises cli.FlagError."""
    with cli.flag("preset"):
        preset = config_lib.get_preset(flag_values.preset)
    scenario = preset.scenario
    replace = dataclasses.replace
    overrides = (
        ("num_prb", lambda s, v: replace(s, carrier=replace(s.carrier, num_prb=v))),
        ("channel", lambda s, v: replace(s, channel=replace(s.channel, family=v))),
        ("modulation", lambda s, v: replace(s, modulation=v)),
        ("num_dmrs", lambda s, v: replace(s, dmrs=replace(s.dmrs, num_symbols=v))),
        ("num_rx", lambda s, v: replace(s, num_rx=v)),
        ("sir_db", lambda s, v: replace(s, interferer=None if v == "none"
                                        else config_lib.InterfererConfig(sir_db=parse_pair(v)))),
    )
    for name, apply in overrides:
        value = getattr(flag_values, name)
        if value is not None:
            with cli.flag(name):
                scenario = apply(scenario, value)
    return preset, scenario
