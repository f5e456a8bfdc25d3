#!/usr/bin/env bash
# The single-node Slurm of the backend tests (tests/clusters.py): Debian's slurm-wlm and munge,
# installed with apt-get where this runs as root and they are missing. Elsewhere it says why
# not and exits 0: those tests then skip with the reason.
set -euo pipefail
if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_cluster_tools: not root with apt-get: the Slurm backend tests will skip" >&2
  exit 0
fi
echo "install_cluster_tools: apt-get install slurm-wlm munge" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
