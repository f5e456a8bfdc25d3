"""The device side, what a Coral board (or any host) runs: edge.runner (latency, throughput,
CPU time, BER and energy of a .tflite on the Edge TPU or the CPU interpreter), edge.verify (the
.tflite check before an interpreter sees it), edge.power (power sources, the four-step energy)
and edge.ber (the ber.csv / summary.json rules). Python 3.7, the standard library, numpy and a
TFLite interpreter only; nothing of deeprx/."""
