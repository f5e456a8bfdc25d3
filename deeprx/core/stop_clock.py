"""Time a process spent stopped (SIGSTOP, `kill -STOP`, Ctrl-Z), so that a training run
paused to leave the cores idle for a timing does not count the pause as training time.

A stop cannot be caught; the SIGCONT that ends it can. Its Python handler may run late
(measured with TensorFlow loaded: only once the main thread next blocks), so the clock reads
the signal's wakeup fd instead, which the C-level handler writes to at once. The stop is
measured from its step: that step's wall time less the last step's that had no stop in it.
"""

import os
import signal
import threading


class StopClock:
    """`stopped_seconds(step_seconds)` after every timed step: how much of that step's wall
    time the process was stopped (0 for a step with no SIGCONT in it). Needs the main thread
    (where Python signal handlers live) and holds the process's one signal wakeup fd until
    `close()`, which puts the previous handler and fd back; elsewhere it measures nothing."""

    def __init__(self):
        self._usual_seconds = None
        self._read = self._write = None
        if not hasattr(signal, "SIGCONT") or threading.current_thread() is not threading.main_thread():
            return
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous_handler = signal.signal(signal.SIGCONT, lambda signum, frame: None)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def _continued(self):
        """Whether a SIGCONT came since the last call (the fd also gets other handled signals)."""
        if self._read is None:
            return False
        received = b""
        while True:
            try:
                chunk = os.read(self._read, 512)
            except BlockingIOError:
                break
            received += chunk
            if not chunk:
                break
        return int(signal.SIGCONT) in received

    def stopped_seconds(self, step_seconds):
        if not self._continued():
            self._usual_seconds = step_seconds
            return 0.0
        # Not counted: a stop in the first step (no step to compare with), or between two steps
        # (the step it is read after took its usual time).
        return max(0.0, step_seconds - (self._usual_seconds if self._usual_seconds is not None else step_seconds))

    def close(self):
        if self._read is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        signal.signal(signal.SIGCONT, self._previous_handler)
        os.close(self._read)
        os.close(self._write)
        self._read = self._write = None
