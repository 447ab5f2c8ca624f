"""Optimizers: walk (parameter, gradient) pairs and update each parameter array in place.

Every optimizer supports learning-rate decay, lr_t = lr / (1 + decay · t), where t counts
the steps taken before this one. State (velocities, moments) is kept per parameter,
in the order the parameters are given, which is the model's layer order.
"""

import numpy as np


class Optimizer:
    def __init__(self, lr: float, decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.lr = float(lr)
        self.decay = float(decay)
        self.t = 0  # steps taken
        self.state: list[dict] = []

    def current_lr(self) -> float:
        return self.lr / (1.0 + self.decay * self.t)

    def step(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Apply one update to every (param, grad) pair."""
        if not self.state:
            self.state = [{} for _ in pairs]
        lr = self.current_lr()
        self.t += 1
        for (p, g), s in zip(pairs, self.state):
            self.update(p, g, s, lr)

    def update(self, p, g, state, lr):
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    def get_state(self) -> dict[str, np.ndarray]:
        """Everything a resumed run needs to take the same next step: the step count and copies of
        the per-parameter arrays, keyed 't' and '<parameter index>.<name>' (npz-ready)."""
        out = {"t": np.array(self.t), "n": np.array(len(self.state))}
        for i, s in enumerate(self.state):
            for k, v in s.items():
                out[f"{i}.{k}"] = v.copy()
        return out

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what `get_state` returned (before the first step of the resumed run)."""
        self.t = int(state["t"])
        self.state = [{} for _ in range(int(state["n"]))]
        for name, v in state.items():
            if "." in name:
                i, k = name.split(".", 1)
                self.state[int(i)][k] = np.array(v)


class SGD(Optimizer):
    """v = momentum · v - lr_t · g;  p += v   (plain SGD when momentum = 0).

    Nesterov looks ahead: p += momentum · v - lr_t · g, with the new v.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, decay: float = 0.0):
        super().__init__(lr, decay)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def update(self, p, g, state, lr):
        if self.momentum == 0.0:
            p -= lr * g
            return
        v = state.get("v")
        if v is None:
            v = state["v"] = np.zeros_like(p)
        v *= self.momentum
        v -= lr * g
        if self.nesterov:
            p += self.momentum * v - lr * g
        else:
            p += v

    def config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov, "decay": self.decay}


class RMSProp(Optimizer):
    """s = rho · s + (1 - rho) · g²;  p -= lr_t · g / (sqrt(s) + eps): a per-weight step size."""

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8, decay: float = 0.0):
        super().__init__(lr, decay)
        self.rho, self.eps = float(rho), float(eps)

    def update(self, p, g, state, lr):
        s = state.get("s")
        if s is None:
            s = state["s"] = np.zeros_like(p)
        s *= self.rho
        s += (1.0 - self.rho) * g * g
        p -= lr * g / (np.sqrt(s) + self.eps)

    def config(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps, "decay": self.decay}


class Adam(Optimizer):
    """Momentum (m) and RMSProp (v) with bias correction for their zero start:
    p -= lr_t · m̂ / (sqrt(v̂) + eps), m̂ = m / (1 - beta1^t), v̂ = v / (1 - beta2^t), t from 1."""

    def __init__(
        self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, decay: float = 0.0
    ):
        super().__init__(lr, decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def update(self, p, g, state, lr):
        if "m" not in state:
            state["m"], state["v"] = np.zeros_like(p), np.zeros_like(p)
        m, v, t = state["m"], state["v"], self.t
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * g * g
        m_hat = m / (1.0 - self.beta1**t)
        v_hat = v / (1.0 - self.beta2**t)
        p -= lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, "decay": self.decay}


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSProp, "adam": Adam}
