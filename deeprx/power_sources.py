"""The host's power sources for the paper's four-step energy method (edge/power.py holds
the device-side ones: rapl, meter:PATH, rated:WATTS): CodeCarbon and NVML, which the
Python 3.7 board never has. No flags here: deeprx.energy and deeprx.study check --source
with parse_source before any compute."""

import time

from edge import power as power_lib


class CodeCarbonSource(power_lib.PowerSource):
    """CodeCarbon's task API in process mode (only this process's CPU load counts)."""

    def __init__(self, argument=""):
        import logging
        import codecarbon
        from codecarbon import OfflineEmissionsTracker
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.tracker = OfflineEmissionsTracker(country_iso_code="FIN", tracking_mode="process", save_to_file=False,
                                               log_level="error", measure_power_secs=1)
        self.tracker._ensure_hardware_ready()  # what it measures with is known only then
        modes = {type(h).__name__: getattr(h, "_mode", None) for h in self.tracker._hardware}
        cpu_mode = modes.get("CPU")
        self.measured = cpu_mode in ("intel_rapl", "apple_powermetrics")
        how = "RAPL" if cpu_mode == "intel_rapl" else f"{cpu_mode}: TDP x CPU load, no RAPL"
        self.name = f"CodeCarbon {codecarbon.__version__} ({how})"

    def measure(self, workload):
        self.tracker.start_task()
        value = workload()
        data = self.tracker.stop_task()
        return data.duration, data.energy_consumed * 3.6e6, value


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


HOST_SOURCES = {"codecarbon": CodeCarbonSource, "nvml": NvmlSource}


def parse_source(spec):
    return power_lib.parse_source(spec, HOST_SOURCES)
