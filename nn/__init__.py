"""nn: a NumPy CNN library (layers, losses, optimizers, Sequential, save/load, data sets).

Imports only NumPy, SciPy and the standard library.
"""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, softmax
from .batchnorm import BatchNorm
from .callbacks import Callback, CallbackList, EarlyStopping, History
from .conv import Conv2D
from .convpool import ConvPool2D
from .dense import Dense
from .dropout import Dropout
from .layer import Layer
from .losses import MSE, SoftmaxCrossEntropy
from .model import Sequential
from .optimizers import SGD, Adam, RMSProp
from .pooling import AvgPool2D, MaxPool2D
from .reshape import Flatten
from .serialize import load_model, save_model

__all__ = [
    "Adam",
    "AvgPool2D",
    "BatchNorm",
    "Callback",
    "CallbackList",
    "Conv2D",
    "ConvPool2D",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Flatten",
    "History",
    "Layer",
    "LeakyReLU",
    "MSE",
    "MaxPool2D",
    "RMSProp",
    "ReLU",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Tanh",
    "load_model",
    "save_model",
    "softmax",
]
