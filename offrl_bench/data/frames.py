"""Image datasets in memory: every frame stored once as uint8, stacked when a batch is drawn.

An episode of n steps has n + 1 frames. A transition's observation and next observation are views
of the same frames (next = the following frame), so nothing is stored twice, and a stack of the
last ``stack`` frames (DQN's input on Atari) is gathered at sample time, as DQN's replay buffers do,
never stored: 1M Atari transitions take 7.1 GB as single 84x84 frames and would take 113 GB as
float32 stacks. Before an episode's first frame the stack repeats that frame, as Gymnasium's
``FrameStackObservation`` (``padding_type="reset"``) does at reset, so the stacked observations equal
what a frame-stacked environment showed the behaviour policy.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch


class FrameView:
    """The observations (or next observations) of an image dataset, indexed like a tensor:
    ``view[index]`` -> uint8 (*index.shape, H, W, stack * C), channels last."""

    def __init__(self, frames: torch.Tensor, frame_of: torch.Tensor, first_frame: torch.Tensor, stack: int,
                 copies: dict[str, torch.Tensor] | None = None) -> None:
        self.frames = frames  # (F, H, W, C) uint8, shared by a dataset's two views
        self.frame_of = frame_of  # (N,) the newest frame of each transition's observation
        self.first_frame = first_frame  # (N,) the first frame of each transition's episode
        self.stack = stack
        #: The frames on each device they were moved to, shared by the views made from one another,
        #: so that moving a dataset (both views) to a GPU copies its frames once.
        self.copies = {str(frames.device): frames} if copies is None else copies

    @property
    def shape(self) -> tuple[int, ...]:
        height, width, channels = self.frames.shape[1:]
        return (len(self.frame_of), height, width, self.stack * channels)

    @property
    def dtype(self) -> torch.dtype:
        return self.frames.dtype

    @property
    def device(self) -> torch.device:
        return self.frames.device

    def __len__(self) -> int:
        return len(self.frame_of)

    def __getitem__(self, index) -> torch.Tensor:
        newest = self.frame_of[index]
        if self.stack == 1:
            return self.frames[newest]
        first = self.first_frame[index]
        return torch.cat([self.frames[torch.maximum(newest - back, first)] for back in range(self.stack - 1, -1, -1)],
                         dim=-1)

    def to(self, device: str | torch.device) -> FrameView:
        target = str(torch.empty(0, device=device).device)  # where a tensor lands ("cuda" -> "cuda:0")
        if target not in self.copies:
            self.copies[target] = self.frames.to(target)
        return FrameView(self.copies[target], self.frame_of.to(target), self.first_frame.to(target), self.stack,
                         self.copies)


class FrameBuffer:
    """Collects the frames of a dataset's episodes into one preallocated uint8 array (no list of
    per-episode copies beside it, so loading peaks at the frames' own size)."""

    def __init__(self, total_frames: int, frame_shape: tuple[int, ...]) -> None:
        self.frames = np.empty((total_frames, *frame_shape), dtype=np.uint8)
        self.filled = 0
        self.frame_of: list[np.ndarray] = []
        self.first_frame: list[np.ndarray] = []

    def add_episode(self, frames: np.ndarray) -> None:
        """The n + 1 frames of an episode of n steps."""
        count = len(frames)
        if self.filled + count > len(self.frames):
            raise ValueError(f"episodes hold more frames than the dataset's {len(self.frames)} steps + episodes")
        self.frames[self.filled:self.filled + count] = frames
        self.frame_of.append(np.arange(self.filled, self.filled + count - 1))
        self.first_frame.append(np.full(count - 1, self.filled))
        self.filled += count

    def views(self, stack: int) -> tuple[FrameView, FrameView]:
        """(observations, next observations) over the frames, ``stack`` frames deep."""
        frames = torch.from_numpy(self.frames[:self.filled])
        frame_of = torch.from_numpy(np.concatenate(self.frame_of).astype(np.int64))
        first_frame = torch.from_numpy(np.concatenate(self.first_frame).astype(np.int64))
        observations = FrameView(frames, frame_of, first_frame, stack)
        return observations, FrameView(frames, frame_of + 1, first_frame, stack, observations.copies)


def stacked_space(frame_space: gym.spaces.Box, stack: int) -> gym.spaces.Box:
    """The observation space of ``stack`` frames of ``frame_space`` stacked as channels."""
    return gym.spaces.Box(np.concatenate([frame_space.low] * stack, axis=-1),
                          np.concatenate([frame_space.high] * stack, axis=-1), dtype=frame_space.dtype)
