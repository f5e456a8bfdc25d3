"""Power sources and the paper's four-step measured energy (PAPER.md section 3).

This file runs on the device too: Python 3.7 syntax, standard library only.

The four steps, around a workload of N inferences:
  1. base power: the median of the power over quiet sub-windows before the run;
  2. absolute power during the run: the run's energy / its duration;
  3. relative power = absolute - base;
  4. relative energy = relative power x the run's duration (per inference: / N).

Sources (`parse_source`; deeprx.energy adds codecarbon and nvml on a host):
  rapl         RAPL package energy counters in /sys/class/powercap (measured)
  meter:PATH   an external meter's CSV with a `timestamp,watts` header, timestamps in Unix
               seconds (or ISO 8601) of this machine's clock, read after the run (measured)
  rated:WATTS  a rated power x the measured time (estimated): no base to subtract, since a
               rated power is the device's active power. The only option on a Coral board,
               which has no power sensor.
  hwmon:PATH[@HZ]  a Linux hwmon power sensor (an INA219/INA226/INA260 on a board's I2C, the
               `ina2xx` driver): PATH is its directory (/sys/class/hwmon/hwmonN) or one of its
               files; power1_input (microwatts), else in1_input x curr1_input (millivolts x
               milliamps), sampled in a background thread at HZ (default 100) through each
               window (measured)
  cputime:W    the CPU time this process spent (user + system, all its threads, from the OS)
               x W watts per busy core (estimated): bills the cores the work kept busy, not
               the wall time; deeprx.energy's host version takes its W from CodeCarbon's TDP.
Every result also records the process's CPU time next to the wall time (busy cores = CPU
seconds / wall seconds): threads spinning idle show up there, whatever the source.
Every result names its source and says whether it was measured or estimated.
"""

import csv
import datetime
import glob
import os
import statistics
import threading
import time

POWERCAP = "/sys/class/powercap"


class PowerError(Exception):
    """A power source that cannot be read, or a trace that does not cover a window: one line."""


class PowerSource(object):
    """Measures the energy (J) a callable takes; subclasses say how."""
    name = "source"
    measured = True        # False: an estimate
    subtracts_base = True  # False: the figure is already the active power's

    def label(self):
        return "%s (%s)" % (self.name, "measured" if self.measured else "estimated")

    def measure(self, workload):
        """(seconds, joules, workload's return value)."""
        raise NotImplementedError


class RatedSource(PowerSource):
    measured = False
    subtracts_base = False

    def __init__(self, watts):
        if not watts > 0:
            raise PowerError("a rated power must be positive, got %r W" % watts)
        self.watts = float(watts)
        self.name = "rated power %g W x measured time" % self.watts

    def measure(self, workload):
        start = time.perf_counter()
        value = workload()
        seconds = time.perf_counter() - start
        return seconds, self.watts * seconds, value


def cpu_seconds():
    """User + system CPU seconds of this process so far (every thread). time.process_time
    reads CLOCK_PROCESS_CPUTIME_ID (nanoseconds); os.times() ticks at 10 ms, too coarse
    for a few milliseconds of inference."""
    return time.process_time()


class CpuTimeSource(PowerSource):
    measured = False
    subtracts_base = False

    def __init__(self, watts_per_core, how=""):
        if not watts_per_core > 0:
            raise PowerError("a power per busy core must be positive, got %r W" % watts_per_core)
        self.watts = float(watts_per_core)
        self.name = "process CPU time x %g W per busy core%s" % (self.watts, " (" + how + ")" if how else "")

    def measure(self, workload):
        start, cpu = time.perf_counter(), cpu_seconds()
        value = workload()
        return time.perf_counter() - start, self.watts * (cpu_seconds() - cpu), value


def integrate(samples, start, end, what="the power trace"):
    """Energy (J) of a step-wise power trace [(timestamp, watts), ...] (sorted) over [start, end]:
    each sample holds until the next; the first sample also covers the window before it."""
    if not samples or samples[0][0] > end or samples[-1][0] < start:
        raise PowerError("%s has no sample in the window %.3f..%.3f s (it spans %s): record it over the "
                         "whole run" % (what, start, end, "%.3f..%.3f s" % (samples[0][0], samples[-1][0])
                                        if samples else "nothing"))
    first = max([i for i, (t, _) in enumerate(samples) if t <= start] or [0])
    joules = 0.0
    for index in range(first, len(samples)):
        t, watts = samples[index]
        if t > end:
            break
        segment_start = max(t, start) if index > first else start
        segment_end = min(samples[index + 1][0], end) if index + 1 < len(samples) else end
        joules += watts * (segment_end - segment_start)
    return joules


class TraceSource(PowerSource):
    """A power trace over wall-clock time, integrated over each window afterwards.

    `samples` is a list of (timestamp, watts) or a callable returning one (read after the
    run, as a meter's log is); `clock` gives the trace's time (time.time for a meter)."""

    def __init__(self, samples, name="power trace", clock=time.time):
        self._samples, self.name, self.clock = samples, name, clock

    def samples(self):
        samples = self._samples() if callable(self._samples) else self._samples
        if not samples:
            raise PowerError("%s is empty: no power samples" % self.name)
        return sorted(samples)

    def measure(self, workload):
        start = self.clock()
        value = workload()
        end = self.clock()
        return end - start, integrate(self.samples(), start, end, self.name), value


def _timestamp(text):
    try:
        return float(text)
    except ValueError:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()


def read_meter_csv(path):
    """[(timestamp, watts), ...] of a meter CSV with a `timestamp,watts` header."""
    if not os.path.isfile(path):
        raise PowerError("no meter CSV at %s" % path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [cell.strip().lower() for cell in next(reader, [])]
        if header[:2] != ["timestamp", "watts"]:
            raise PowerError("%s: the first line must be the header `timestamp,watts`, got %r"
                             % (path, ",".join(header)))
        samples = []
        for number, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                samples.append((_timestamp(row[0]), float(row[1])))
            except (ValueError, IndexError):
                raise PowerError("%s line %d: expected `timestamp,watts` (Unix seconds or ISO 8601, "
                                 "a number of watts), got %r" % (path, number, ",".join(row)))
    if not samples:
        raise PowerError("%s has no power samples: empty power trace" % path)
    return samples


class MeterCsvSource(TraceSource):
    def __init__(self, path, clock=time.time):
        read_meter_csv(path)  # fails now on a missing or malformed file
        TraceSource.__init__(self, lambda: read_meter_csv(path), "external meter %s" % path, clock)


class HwmonSource(PowerSource):
    """A Linux hwmon power sensor read in a background thread at `rate_hz` while a window
    runs; the samples are integrated step-wise over the window (see integrate)."""

    def __init__(self, path, rate_hz=100.0, clock=time.monotonic):
        if not rate_hz > 0:
            raise PowerError("a sampling rate must be positive, got %r Hz" % rate_hz)
        self.rate_hz, self.clock = float(rate_hz), clock
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        if os.path.isfile(path) and os.path.basename(path).startswith("power"):
            self.files = (path,)
        elif os.path.isfile(os.path.join(directory, "power1_input")):
            self.files = (os.path.join(directory, "power1_input"),)
        elif all(os.path.isfile(os.path.join(directory, name)) for name in ("in1_input", "curr1_input")):
            self.files = (os.path.join(directory, "in1_input"), os.path.join(directory, "curr1_input"))
        else:
            raise PowerError("no hwmon power sensor at %s: expected power1_input, or in1_input and curr1_input "
                             "(load the sensor's driver, e.g. ina2xx; ls /sys/class/hwmon/*/name)" % path)
        try:
            self.watts()
        except (OSError, ValueError) as error:
            raise PowerError("the hwmon sensor %s is not readable (%s): run as root or make its files "
                             "readable" % (", ".join(self.files), error))
        self.name = "hwmon sensor %s, sampled at %g Hz" % (" x ".join(self.files), self.rate_hz)

    def watts(self):
        values = []
        for name in self.files:
            with open(name) as f:
                values.append(float(f.read().strip()))
        if len(values) == 1:
            return values[0] / 1e6          # microwatts
        return values[0] * values[1] / 1e6  # millivolts x milliamps

    def measure(self, workload):
        samples, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((self.clock(), self.watts()))
                stop.wait(1.0 / self.rate_hz)

        samples.append((self.clock(), self.watts()))
        thread = threading.Thread(target=sample, daemon=True)
        start = self.clock()
        thread.start()
        try:
            value = workload()
        finally:
            end = self.clock()
            stop.set()
            thread.join()
        samples.append((self.clock(), self.watts()))
        return end - start, integrate(sorted(samples), start, end, self.name), value


def hwmon_source(argument):
    """hwmon:PATH or hwmon:PATH@HZ."""
    path, _, rate = argument.rpartition("@") if "@" in argument else (argument, "", "")
    return HwmonSource(path, parse_rate(rate) if rate else 100.0)


def parse_rate(text):
    return _number(text, "a sampling rate in Hz was expected after @, got %r")


class RaplSource(PowerSource):
    """The package-level RAPL counters (intel-rapl:N; AMD exposes them under the same name)."""
    name = "RAPL package counters"

    def __init__(self, root=POWERCAP):
        self.zones = sorted(path for path in glob.glob(os.path.join(root, "intel-rapl:*"))
                            if os.path.basename(path).count(":") == 1)
        if not self.zones:
            raise PowerError("no RAPL counters in %s (a VM or a CPU without RAPL): use another source, "
                             "e.g. meter:PATH or rated:WATTS" % root)
        try:
            self._read()
        except (OSError, ValueError) as error:
            raise PowerError("RAPL counters in %s are not readable (%s): run as root or "
                             "`sudo chmod a+r %s/intel-rapl:*/energy_uj`" % (root, error, root))

    def _read(self):
        values = []
        for zone in self.zones:
            with open(os.path.join(zone, "energy_uj")) as f, open(os.path.join(zone, "max_energy_range_uj")) as g:
                values.append((int(f.read()), int(g.read())))
        return values

    def measure(self, workload):
        before, start = self._read(), time.perf_counter()
        value = workload()
        seconds, after = time.perf_counter() - start, self._read()
        microjoules = sum((b - a) % (top + 1) for (a, top), (b, _) in zip(before, after))
        return seconds, microjoules / 1e6, value


def four_step(source, workload, inferences, base_seconds=5.0, windows=5, sleep=time.sleep):
    """The paper's four steps around `workload` (which runs `inferences` inferences).

    Returns (a JSON-ready dict, the workload's return value)."""
    if inferences < 1:
        raise PowerError("a run needs at least one inference, got %r" % inferences)
    result = {"source": source.label(), "measured": source.measured}
    if source.subtracts_base:
        powers = []
        for _ in range(windows):
            seconds, joules, _ = source.measure(lambda: sleep(base_seconds / windows))
            powers.append(joules / seconds)
        base = statistics.median(powers)
        result.update(base_seconds=base_seconds, base_window_powers_w=[round(p, 6) for p in powers])
    else:
        base = 0.0
        result["base"] = "none: the source gives the active power (a rated power, or CPU time x power per core)"
    cpu = cpu_seconds()
    seconds, joules, value = source.measure(workload)
    cpu = cpu_seconds() - cpu
    if not seconds > 0:
        raise PowerError("the run took no measurable time")
    absolute = joules / seconds
    relative = absolute - base
    result.update(base_power_w=base, run_seconds=seconds, absolute_power_w=absolute, relative_power_w=relative,
                  relative_energy_j=relative * seconds, inferences=inferences,
                  joules_per_inference=relative * seconds / inferences, cpu_seconds=cpu,
                  wall_ms_per_inference=1e3 * seconds / inferences, cpu_ms_per_inference=1e3 * cpu / inferences,
                  busy_cores=cpu / seconds)
    if relative <= 0:
        result["warning"] = ("the run drew no more power than the base: the source cannot see this "
                             "workload, its energy is not measured")
    return result, value


SOURCES = {"rapl": lambda arg: RaplSource(), "meter": MeterCsvSource, "hwmon": hwmon_source,
           "rated": lambda arg: RatedSource(parse_watts(arg)), "cputime": lambda arg: CpuTimeSource(parse_watts(arg))}
NEEDS_ARGUMENT = {"meter": "PATH", "hwmon": "PATH", "rated": "WATTS", "cputime": "W"}


def _number(text, message):
    """float(text), or a PowerError of `message` % text."""
    try:
        return float(text)
    except ValueError:
        raise PowerError(message % text)


def parse_watts(text):
    return _number(text, "a number of watts was expected, got %r")


def parse_source(spec, sources=None, needs_argument=None):
    """The source named by `spec` (rapl, meter:PATH, rated:WATTS, or one of `sources`)."""
    sources = dict(SOURCES, **(sources or {}))
    needs_argument = dict(NEEDS_ARGUMENT, **(needs_argument or {}))
    needs_argument = {kind: what for kind, what in needs_argument.items() if what}
    kind, _, argument = spec.partition(":")
    if kind not in sources:
        raise PowerError("unknown power source %r: use one of %s" % (spec, ", ".join(
            k + (":" + needs_argument[k] if k in needs_argument else "") for k in sorted(sources))))
    if kind in needs_argument and not argument:
        raise PowerError("power source %s needs %s:%s" % (kind, kind, needs_argument[kind]))
    return sources[kind](argument)
