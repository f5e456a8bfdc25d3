"""Writes each results folder's README.md from the files in it, so that no table is copied
by hand and none can drift; --check fails if a committed page differs from what its files give.
What a page holds: deeprx/evaluation/results_pages.py.

Example usage:
  python -m deeprx.results_pages                 # rewrite data/results/*/README.md
  python -m deeprx.results_pages --check         # exit 1, naming the stale pages (a test runs this)
"""

import os
import sys

from absl import flags

from deeprx import REPO_ROOT
from deeprx import cli
from deeprx.evaluation import results_pages

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("results", os.path.join(REPO_ROOT, "data", "results"), "the results directory")
    flags.DEFINE_bool("check", False, "write nothing; exit 1 if a page differs from what its files give")


def main(argv):
    del argv
    if not os.path.isdir(FLAGS.results):
        raise cli.FlagError("results", f"no directory {FLAGS.results}")
    stale = results_pages.write_pages(FLAGS.results, check=FLAGS.check)
    if FLAGS.check and stale:
        print("stale results pages (run python -m deeprx.results_pages): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
