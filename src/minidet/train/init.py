"""The network a training run starts from: a copy of the base model's (transfer learning and
fine-tuning) or a new one with Keras' initialisation (full training).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..model.modelfile import network_from_hyperparameters
from ..model.network import MiniMLNet

__all__ = ["initial_network", "keras_init_", "load_base"]


def keras_init_(network: MiniMLNet) -> MiniMLNet:
    """Initialise a new network as Keras does (in place): Glorot-uniform kernels, zero biases,
    orthogonal recurrent kernels and a forget-gate bias of 1 in the LSTM."""
    for module in network.modules():
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            h = module.hidden_size
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    # Keras draws the (input, 4h) kernel as one Glorot matrix.
                    nn.init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    for gate in range(4):
                        nn.init.orthogonal_(param.data[gate * h:(gate + 1) * h])
                elif name.startswith("bias_ih"):
                    nn.init.zeros_(param)
                    param.data[h:2 * h] = 1.0
                elif name.startswith("bias_hh"):
                    nn.init.zeros_(param)
    return network


def load_base(base: Any):
    """A loaded :class:`~minidet.model.core.MinidetModel` as it is, else ``load_model(base)``."""
    from ..model.core import MinidetModel, load_model

    if isinstance(base, MinidetModel):
        return base
    return load_model(base)


def initial_network(base_model: Any, input_size: int, dropout: float) -> MiniMLNet:
    """The network to train: the base model's architecture and weights with ``dropout``
    (``base_model`` given), else a new Keras-initialised one of ``input_size`` inputs. Draws
    from torch's random generator (seed it first)."""
    if base_model is not None:
        hp = dict(base_model.network.hyperparameters())
        hp["dropout"] = float(dropout)
        network = network_from_hyperparameters(hp)
        network.load_state_dict(base_model.network.state_dict())
        return network
    return keras_init_(MiniMLNet(input_size, dropout=float(dropout)))
