"""The Layer contract every building block of a network follows.

A layer turns an input batch into an output batch (`forward`) and, given the gradient
of the loss with respect to its output, returns the gradient with respect to its input
(`backward`), filling `grads` for each array in `params` on the way. It knows nothing
about optimizers: they walk `params`/`grads` and update the arrays in place.

Image batches are laid out (C, N, H, W): channels first, batch second. Then the im2col
copies and col2im adds of a convolution move whole image rows, its GEMM writes the output
with no transpose, and pooling works on contiguous rows; `build` still takes the per-image
shape (C, H, W). `Sequential` moves (N, C, H, W) images (the data sets' and PyTorch's
layout) to (C, N, H, W) once on the way in (free for one channel), and Flatten hands Dense
layers the usual (N, features) in PyTorch's (C, H, W) feature order.
"""

import numpy as np


class Layer:
    """Base class: holds parameters, their gradients and non-trained state ("buffers")."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}  # saved with the weights, never trained
        self.training = False
        self.input_grad = True  # False for the first layer: nobody needs d(loss)/d(images)
        self.dtype = np.dtype(np.float32)
        self._scratch: dict[str, np.ndarray] = {}

    def build(self, input_shape: tuple, rng: np.random.Generator, dtype) -> tuple:
        """Create parameters for inputs of `input_shape` (no batch axis); return the output shape."""
        self.dtype = np.dtype(dtype)
        return tuple(input_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments, JSON-serialisable: what `save` writes and `load` passes back."""
        return {}

    def _add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = np.ascontiguousarray(value, dtype=self.dtype)
        self.grads[name] = np.zeros_like(self.params[name])

    def _scratch_array(self, name: str, shape: tuple, dtype=None, zeros: bool = False) -> np.ndarray:
        """A work array reused across batches of the same shape (saves an allocation and the
        page faults of a fresh one every step). Its content is what the last user left there;
        with zeros=True a new array starts zeroed, so cells nobody writes stay 0."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        a = self._scratch.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self._scratch[name] = (np.zeros if zeros else np.empty)(shape, dtype)
        return a

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
