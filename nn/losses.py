"""Losses: a scalar per batch (the mean over samples) and its gradient w.r.t. the predictions."""

import numpy as np


class SoftmaxCrossEntropy:
    """Cross-entropy of softmax(logits) against integer class labels, fused.

    log softmax(z) = z - max(z) - log(sum(exp(z - max(z)))) never overflows or takes
    log(0), and the gradient collapses to (softmax(z) - onehot(y)) / N.
    """

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        log_probs_true = shifted[np.arange(n), labels] - np.log(total[:, 0])
        self.probs = e / total
        self.labels = labels
        return float(-log_probs_true.mean())

    def backward(self) -> np.ndarray:
        n = self.probs.shape[0]
        d = self.probs.copy()
        d[np.arange(n), self.labels] -= 1.0
        d *= 1.0 / n
        return d


class MSE:
    """Mean over all elements of (prediction - target)²."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        self.diff = pred - target.reshape(pred.shape).astype(pred.dtype, copy=False)
        return float(np.mean(self.diff * self.diff))

    def backward(self) -> np.ndarray:
        return self.diff * (2.0 / self.diff.size)


LOSSES = {"softmax_crossentropy": SoftmaxCrossEntropy, "mse": MSE}
