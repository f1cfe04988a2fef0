"""Building the pipeline from a configuration: profiles and restored window state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from driftwarden.core.times import Clock, duration_ms
from driftwarden.monitor.config import Config, ModelConfig, TimeWindowConfig
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.pipeline.model_pipeline import ModelPipeline, older_profiles
from driftwarden.monitor.pipeline.pipeline import Pipeline
from driftwarden.monitor.pipeline.spread import Spread, SpreadPipeline
from driftwarden.monitor.pipeline.versions import VersionedPipeline
from driftwarden.monitor.storage import Store
from driftwarden.monitor.windows.profile import (
    Profile,
    fit,
    read_reference,
    reference_id,
    with_importance,
    with_score_bands,
)
from driftwarden.monitor.windows.segmentation import SegmentProfiles, fit_segments
from driftwarden.monitor.windows.vocabulary import category_texts


@dataclass(frozen=True)
class LoadedReference:
    """What a model's pipeline takes from its reference: the profile (and whether it was
    fitted now), the segment profiles (``None`` without ``segments``) and the version the
    reference was scored by (its most frequent ``model_version``, if it has that column)."""

    profile: Profile
    fitted: bool
    segments: SegmentProfiles | None
    version: str | None


def load_reference(name: str, model: ModelConfig, store: Store) -> LoadedReference:
    """The model's profile, from the database if this reference was fitted before, else
    fitted; segment profiles are fitted on the same rows at every start.

    A profile stored before feature importance (or error attribution, or score bands)
    existed gets that part fitted on the reference again at every start.
    """
    frame, content = read_reference(model.reference)
    segments = fit_segments(name, model, frame, content)
    version = reference_version(frame)
    stored = store.profile(reference_id(content, model))
    if stored is not None:
        profile = with_importance(Profile.from_bytes(stored), model, frame)
        profile = with_score_bands(profile, model, frame)
        return LoadedReference(profile, False, segments, version)
    profile = fit(name, model, frame, content)
    store.save_profile(profile.reference_id, name, str(model.reference), profile.to_bytes())
    return LoadedReference(profile, True, segments, version)


def reference_version(frame: pl.DataFrame) -> str | None:
    """The reference's most frequent ``model_version`` (of equally frequent ones, the first
    in text order); ``None`` without that column or any value in it."""
    if "model_version" not in frame.columns:
        return None
    counts = category_texts(frame["model_version"]).drop_nulls().value_counts()
    if counts.height == 0:
        return None
    top = counts.sort(["count", "model_version"], descending=[True, False])
    return str(top["model_version"][0])


def build_pipeline(
    config: Config,
    store: Store,
    *,
    resume: bool,
    join: LabelJoin | None,
    clock: Clock | None = None,
    spread: Spread | None = None,
) -> Pipeline:
    """The pipeline of every configured model; ``resume`` restores stored window state.

    Without a ``join`` (a replay with no labels file) no prediction waits for a label.
    ``spread`` is where models with ``spread`` on are spread (the daemon's predictions
    topic); without it (a replay) they run as one stream: one partition of the same path.
    """
    models: dict[str, ModelPipeline | VersionedPipeline | SpreadPipeline] = {}
    for name, model in config.models.items():
        loaded = load_reference(name, model, store)
        profile = loaded.profile
        state = store.model_state(name) if resume else None
        older = older_profiles(store, state, profile)
        if model.spread:
            one = Spread(config.kafka.predictions_topic, 1, config.kafka.labels_topic, shared=False)
            models[name] = SpreadPipeline(
                name, model, profile, store, join, spread or one, state, loaded.segments
            )
        elif model.versions.split:
            models[name] = VersionedPipeline(
                name,
                model,
                profile,
                older,
                state,
                join,
                segments=loaded.segments,
                reference_version=loaded.version,
            )
        else:
            models[name] = ModelPipeline(
                name, model, profile, older, state, join, segments=loaded.segments
            )
    return Pipeline(config, models, clock=clock)


def close_delays(config: Config) -> dict[str, int]:
    """How long (milliseconds of event time) after its end each model's window closes: its
    ``allowed_lateness`` (always 0 for count windows unless spread: a count window closes
    on its last event)."""
    return {
        name: duration_ms(model.window.allowed_lateness) for name, model in config.models.items()
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
