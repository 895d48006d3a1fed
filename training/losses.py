"""Training losses: multi-resolution STFT loss (DDSP-style).

For each FFT size n: spectral convergence ||S_y - S_x||_F / ||S_x||_F plus the mean
absolute difference of log magnitudes, averaged over resolutions. Inputs are waveforms
(B, N) at the model rate; both terms are scale-aware and need no learned parameters.
"""
from __future__ import annotations

import torch
from torch import nn

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128)


class MultiResolutionSTFTLoss(nn.Module):
    """loss(pred (B,N), target (B,N)) -> (total, {"sc": ..., "mag": ...}) as 0-dim tensors.

    Hop is n_fft // 4 and the window a periodic Hann of n_fft samples. Resolutions whose
    FFT is longer than the signal are skipped (at least one is always kept).
    """

    def __init__(self, fft_sizes: tuple[int, ...] | list[int] = DEFAULT_FFT_SIZES, eps: float = 1e-5) -> None:
        super().__init__()
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.eps = eps
        for n in self.fft_sizes:
            self.register_buffer(f"win_{n}", torch.hann_window(n, periodic=True), persistent=False)

    def _mag(self, x: torch.Tensor, n: int) -> torch.Tensor:
        spec = torch.stft(x, n, hop_length=n // 4, win_length=n, window=getattr(self, f"win_{n}"),
                          center=False, return_complex=True)
        return spec.abs().clamp_min(self.eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        length = pred.shape[-1]
        sizes = [n for n in self.fft_sizes if n <= length] or [min(self.fft_sizes)]
        sc_total = pred.new_zeros(())
        mag_total = pred.new_zeros(())
        for n in sizes:
            if n > length:  # signal shorter than every FFT: pad both the same way
                pad = n - length
                p_, t_ = torch.nn.functional.pad(pred, (0, pad)), torch.nn.functional.pad(target, (0, pad))
            else:
                p_, t_ = pred, target
            sp, st = self._mag(p_, n), self._mag(t_, n)
            sc_total = sc_total + torch.linalg.norm(sp - st) / torch.linalg.norm(st).clamp_min(self.eps)
            mag_total = mag_total + (torch.log(sp) - torch.log(st)).abs().mean()
        k = float(len(sizes))
        sc, mag = sc_total / k, mag_total / k
        return sc + mag, {"sc": sc.detach(), "mag": mag.detach()}
