"""The repository's layout rules (README "Structure"): every module imports together, no
import cycles, layers import only downward, flags live in the CLI layer, modules stay short,
and edge/ (what runs on a Coral board) needs nothing of deeprx/ or TensorFlow."""

import ast
import os
import subprocess
import sys

from conftest import REPO

MAX_LINES = 400
# What edge/ may import: the standard library, numpy, itself, and the TFLite interpreters a
# device has (imported where used, the first that exists).
EDGE_ALLOWED = {"numpy", "edge", "tflite_runtime", "ai_edge_litert", "pycoral"}


# deeprx's layers, lowest first: a module imports only its own layer and the ones below (and
# edge/, a bundle beside them). core is the ground floor (configs, run directories, jobs,
# provenance, file I/O); cli the flag helpers; the command modules deeprx/*.py the top.
LAYERS = (("deeprx", "deeprx.core"), ("deeprx.cli",), ("deeprx.simulation",),
          ("deeprx.network", "deeprx.evaluation", "deeprx.export"), ("deeprx.costs",), ("deeprx.experiments",))
COMMANDS = len(LAYERS)  # the layer of deeprx/*.py


def _layer(module):
    """The layer of a deeprx module (None outside deeprx)."""
    parts = module.split(".")
    if parts[0] != "deeprx":
        return None
    if len(parts) > 1 and parts[1] not in {p.split(".")[1] for layer in LAYERS for p in layer if "." in p}:
        return 0 if parts[1] == "REPO_ROOT" else COMMANDS
    package = ".".join(parts[:2])
    return next(rank for rank, layer in enumerate(LAYERS) if package in layer)


def _modules():
    """{dotted name: path} of every module of deeprx/ and edge/."""
    found = {}
    for top in ("deeprx", "edge"):
        for folder, _, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    found[dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def _imports(path):
    """Top-level-or-not imports of a file: absolute module names (with the imported name
    appended for `from X import Y`, so that a submodule counts)."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_every_module_imports_together_in_one_process_and_defines_no_flag():
    """CLI modules define their flags only when they run (cli.run), so none collide."""
    modules = sorted(_modules())
    script = ("import importlib, sys\nfrom absl import flags\n"
              f"for name in {modules!r}:\n    importlib.import_module(name)\n"
              "ours = [f for f in flags.FLAGS if f in ('workdir', 'out', 'model', 'preset', 'seed', 'threads')]\n"
              "print(len(sys.modules), ours)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("[]"), result.stdout


def test_no_import_cycles_between_the_project_modules():
    modules = _modules()
    graph = {name: {dep for dep in _imports(path) if dep in modules and dep != name and dep not in ("deeprx", "edge")}
             for name, path in modules.items()}
    state = {}

    def visit(name, path):
        state[name] = "open"
        for dep in graph[name]:
            assert state.get(dep) != "open", "import cycle: " + " -> ".join(path + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = "done"
    for name in graph:
        if name not in state:
            visit(name, [name])
    assert graph["deeprx.train"] and not graph["edge.power"]  # the graph is read at all


def test_layers_import_only_downward_and_only_the_cli_layer_defines_or_reads_flags():
    modules = _modules()
    for name, path in modules.items():
        rank = _layer(name)
        if rank is None:
            continue
        upward = sorted(dep for dep in _imports(path) if dep in modules and (_layer(dep) or 0) > rank)
        assert not upward, f"{name} (layer {LAYERS[rank] if rank < COMMANDS else 'commands'}) imports {upward}"
        if rank not in (LAYERS.index(("deeprx.cli",)), COMMANDS):
            text = open(path).read()
            assert "flags.FLAGS" not in text and "flags.DEFINE" not in text, f"{name} defines or reads flags"
    assert _layer("deeprx.core.workdir") == 0 and _layer("deeprx.train") == COMMANDS
    assert _layer("deeprx.experiments.sweep") > _layer("deeprx.network.model") > _layer("deeprx.cli")


def test_every_module_is_under_400_lines():
    long = {name: n for name, path in _modules().items() if (n := sum(1 for _ in open(path))) > MAX_LINES}
    assert not long, long


def test_edge_imports_only_the_standard_library_numpy_and_interpreters():
    modules = {name: path for name, path in _modules().items() if name.split(".")[0] == "edge"}
    assert {"edge.runner", "edge.power", "edge.ber", "edge.verify"} <= set(modules)
    for name, path in modules.items():
        for imported in _imports(path):
            top = imported.split(".")[0]
            assert top in sys.stdlib_module_names or top in EDGE_ALLOWED, f"{name} imports {imported}"
