"""The host's power sources for the paper's four-step energy method (edge/power.py holds
the device-side ones: rapl, meter:PATH, rated:WATTS, cputime:W): CodeCarbon and NVML, which
the Python 3.7 board never has, and cputime with its W from CodeCarbon's TDP table. No flags
here: deeprx.energy and deeprx.study check --energy_source with parse_source before any compute."""

import time

from edge import power as power_lib


def codecarbon_tracker():
    """(CodeCarbon's process-mode tracker, its CPU hardware object) with its hardware detected."""
    import logging
    from codecarbon import OfflineEmissionsTracker
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(country_iso_code="FIN", tracking_mode="process", save_to_file=False,
                                      log_level="error", measure_power_secs=1)
    tracker._ensure_hardware_ready()  # what it measures with is known only then
    cpu = next((h for h in tracker._hardware if type(h).__name__ == "CPU"), None)
    return tracker, cpu


class CodeCarbonSource(power_lib.PowerSource):
    """CodeCarbon's task API in process mode (only this process's CPU load counts). Without
    RAPL its CPU power is an assumed TDP x the process's CPU load: the label says which TDP."""

    def __init__(self, argument=""):
        import codecarbon
        self.tracker, cpu = codecarbon_tracker()
        cpu_mode = getattr(cpu, "_mode", None)
        self.measured = cpu_mode in ("intel_rapl", "apple_powermetrics")
        if cpu_mode == "intel_rapl":
            how = "RAPL"
        else:
            how = (f"{cpu_mode}: TDP {getattr(cpu, '_tdp', '?')} W assumed for {getattr(cpu, '_model', '?')!r} "
                   f"x CPU load, no RAPL")
        self.name = f"CodeCarbon {codecarbon.__version__} ({how})"

    def measure(self, workload):
        self.tracker.start_task()
        value = workload()
        data = self.tracker.stop_task()
        return data.duration, data.energy_consumed * 3.6e6, value


def cputime_source(argument=""):
    """cputime[:W]: the process's CPU time x W per busy core; without W, CodeCarbon's TDP for
    this CPU divided by its core count (the same assumption its cpu_load mode makes)."""
    if argument:
        return power_lib.CpuTimeSource(power_lib.parse_watts(argument))
    _, cpu = codecarbon_tracker()
    tdp, cores = getattr(cpu, "_tdp", None), getattr(cpu, "_cpu_count", None)
    if not tdp or not cores:
        raise power_lib.PowerError("CodeCarbon knows no TDP for this CPU: give the power per core, cputime:WATTS")
    return power_lib.CpuTimeSource(tdp / cores, f"CodeCarbon's TDP {tdp} W for {cpu._model!r} / {cores} cores")


class NvmlSource(power_lib.PowerSource):
    name = "NVML GPU energy counter"

    def __init__(self, argument=""):
        try:
            import pynvml
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(int(argument or 0))
        except Exception as error:  # no pynvml, no driver or no GPU
            raise power_lib.PowerError(f"NVML is not available ({error}): this machine has no usable GPU") from None
        self.pynvml = pynvml

    def measure(self, workload):
        read = lambda: self.pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)  # noqa: E731  (mJ)
        before, start = read(), time.perf_counter()
        value = workload()
        return time.perf_counter() - start, (read() - before) / 1e3, value


HOST_SOURCES = {"codecarbon": CodeCarbonSource, "nvml": NvmlSource, "cputime": cputime_source}


def parse_source(spec):
    return power_lib.parse_source(spec, HOST_SOURCES, needs_argument={"cputime": None})
