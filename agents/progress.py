"""A progress bar for :meth:`Reflect.learn`: steps, steps per second and the mean episode return."""

from __future__ import annotations

import time

from tqdm import tqdm

from reflect.agents.callbacks import ReflectCallback


class ProgressBarCallback(ReflectCallback):
    """tqdm bar over ``total_timesteps``; refreshed every ``refresh_steps`` steps to stay cheap."""

    def __init__(self, total_timesteps: int, refresh_steps: int = 500) -> None:
        super().__init__()
        self.total, self.refresh_steps = total_timesteps, refresh_steps
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.start_steps, self.last_steps = self.num_timesteps, self.num_timesteps
        self.start_time = time.perf_counter()
        self.bar = tqdm(total=self.total, unit="step", dynamic_ncols=True, smoothing=0.1)

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_steps >= self.refresh_steps and self.bar is not None:
            self.bar.update(self.num_timesteps - self.last_steps)
            self.last_steps = self.num_timesteps
            elapsed = max(time.perf_counter() - self.start_time, 1e-9)
            postfix = {"fps": f"{(self.num_timesteps - self.start_steps) / elapsed:.0f}"}
            episodes = self.model.ep_info_buffer
            if episodes:
                postfix["ep_rew_mean"] = f"{sum(r for r, _ in episodes) / len(episodes):.1f}"
            self.bar.set_postfix(postfix, refresh=False)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self.last_steps)
            self.bar.close()
            self.bar = None
