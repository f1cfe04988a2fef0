"""Building the pipeline from a configuration: profiles and restored window state."""

from __future__ import annotations

from datetime import timedelta

from driftwarden.core.times import Clock, duration_ms
from driftwarden.monitor.config import Config, ModelConfig, TimeWindowConfig
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.pipeline.model_pipeline import ModelPipeline
from driftwarden.monitor.pipeline.pipeline import Pipeline
from driftwarden.monitor.pipeline.versions import VersionedPipeline
from driftwarden.monitor.storage import Store
from driftwarden.monitor.windows.profile import (
    Profile,
    fit,
    read_reference,
    reference_id,
    with_importance,
)
from driftwarden.monitor.windows.segmentation import SegmentProfiles, fit_segments


def load_profile(name: str, model: ModelConfig, store: Store) -> tuple[Profile, bool]:
    """The model's profile: from the database if this reference was fitted before, else fitted.

    A profile stored before feature importance (or error attribution) existed gets that part
    fitted on the reference again at every start. Returns the profile and whether it was fitted now.
    """
    profile, fitted, _ = load_profiles(name, model, store)
    return profile, fitted


def load_profiles(
    name: str, model: ModelConfig, store: Store
) -> tuple[Profile, bool, SegmentProfiles | None]:
    """``load_profile`` and the model's segment profiles, fitted on the same reference rows
    at every start (``None`` without ``segments``)."""
    frame, content = read_reference(model.reference)
    segments = fit_segments(name, model, frame, content)
    wanted = reference_id(content, model)
    stored = store.profile(wanted)
    if stored is not None:
        return with_importance(Profile.from_bytes(stored), model, frame), False, segments
    profile = fit(name, model, frame, content)
    store.save_profile(profile.reference_id, name, str(model.reference), profile.to_bytes())
    return profile, True, segments


def build_pipeline(
    config: Config,
    store: Store,
    *,
    resume: bool,
    join: LabelJoin | None,
    clock: Clock | None = None,
) -> Pipeline:
    """The pipeline of every configured model; ``resume`` restores stored window state.

    Without a ``join`` (a replay with no labels file) no prediction waits for a label.
    """
    models: dict[str, ModelPipeline | VersionedPipeline] = {}
    for name, model in config.models.items():
        profile, _, segments = load_profiles(name, model, store)
        state = store.model_state(name) if resume else None
        older: dict[str, Profile] = {}
        if state is not None and state.reference_id != profile.reference_id:
            previous = store.profile(state.reference_id)
            if previous is not None:
                older[state.reference_id] = Profile.from_bytes(previous)
        kind = VersionedPipeline if model.versions.split else ModelPipeline
        models[name] = kind(name, model, profile, older, state, join, segments=segments)
    return Pipeline(config, models, clock=clock)


def close_delays(config: Config) -> dict[str, int]:
    """How long (milliseconds of event time) after its end each model's window closes: its
    ``allowed_lateness`` (a count window closes on its last event)."""
    return {
        name: duration_ms(model.window.allowed_lateness)
        if isinstance(model.window, TimeWindowConfig)
        else 0
        for name, model in config.models.items()
    }


def window_sizes(config: Config) -> dict[str, timedelta]:
    """Each time-windowed model's window size (alerts judge result ages by it)."""
    return {
        name: model.window.size
        for name, model in config.models.items()
        if isinstance(model.window, TimeWindowConfig)
    }


def split_models(config: Config) -> list[str]:
    """Models whose versions are monitored separately (``versions.split``)."""
    return [name for name, model in config.models.items() if model.versions.split]
