"""attnsim: how a single attention head learns under gradient descent, simulated fast on
a CPU and set beside a closed-form theory of the same dynamics (Snell et al., 2021).

Models form a ladder (docs/design.md §7): ``ModelConfig`` is rung 0, the paper's
approximation (free attention logits and translation table); ``DotConfig`` is rung 1, a
dot-product head over learned embeddings; ``RNNConfig`` is rung 2, the authors' LSTM/GRU
seq2seq; ``ClassifierConfig`` is rung 3, the authors' attention classifier. Every
function below takes any of them.
"""

from . import metrics, tasks, theory
from ._arch import config_from_dict
from ._compare import compare
from ._model import effective_tables, forward, init_params, loss_and_grad
from ._sweep import SweepTable, load_spec, sweep
from ._train import Run, load_run, train, train_many
from .arch.clf import ClassifierConfig
from .arch.dot import DotConfig
from .arch.free import ModelConfig
from .arch.rnn import RNNConfig

__all__ = [
    "ClassifierConfig",
    "DotConfig",
    "ModelConfig",
    "RNNConfig",
    "Run",
    "SweepTable",
    "compare",
    "config_from_dict",
    "effective_tables",
    "forward",
    "init_params",
    "load_run",
    "load_spec",
    "loss_and_grad",
    "metrics",
    "models",
    "sweep",
    "tasks",
    "theory",
    "train",
    "train_many",
]
__version__ = "0.4.0"


def models() -> list[str]:
    """The registered architectures, in ladder order (``["free", "dot", "rnn", "clf"]``)."""
    from ._arch import names

    return names()
