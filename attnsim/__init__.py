"""attnsim: how a single attention head learns under gradient descent, simulated fast on
a CPU and set beside a closed-form theory of the same dynamics (Snell et al., 2021)."""

from . import metrics, tasks, theory
from ._compare import compare
from ._config import ModelConfig
from ._model import forward, init_params, loss_and_grad
from ._sweep import SweepTable, load_spec, sweep
from ._train import Run, load_run, train, train_many

__all__ = [
    "ModelConfig",
    "Run",
    "SweepTable",
    "compare",
    "forward",
    "init_params",
    "load_run",
    "load_spec",
    "loss_and_grad",
    "metrics",
    "sweep",
    "tasks",
    "theory",
    "train",
    "train_many",
]
__version__ = "0.1.0"
