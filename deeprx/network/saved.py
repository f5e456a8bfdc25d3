"""The trained network of a run directory or shipped model (core.workdir.RunDir): its
DeepRxConfig from config.json, and its weights built on a grid."""

from deeprx.core import workdir as workdir_lib
from deeprx.network import model as model_lib


def model_config(run_dir):
    """The DeepRxConfig a RunDir saved."""
    model = run_dir.settings["model"]
    return model_lib.DeepRxConfig(**dict(model, widths=tuple(model["widths"]),
                                         dilations=tuple(tuple(d) for d in model["dilations"])))


def model_on_grid(run_dir, scenario, batch_size=None, name=None, off_distribution=False):
    """(the RunDir's trained model built on `scenario`'s grid with its weights, its DeepRxConfig):
    the fully convolutional DeepRx runs on any PRB count of its training scenario (ValueError
    for another scenario; workdir.check_grid_change); `batch_size` fixes the batch (TFLite export)."""
    import tf_keras as keras
    workdir_lib.check_grid_change(run_dir.settings["scenario"], scenario, off_distribution)
    trained = keras.models.load_model(run_dir.file(workdir_lib.MODEL_FILENAME), compile=False)
    config = model_config(run_dir)
    return model_lib.on_grid(trained, config, scenario, name=name, batch_size=batch_size), config
