"""Building the pipeline from a configuration: profiles, decoders, restored window state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from driftwarden.monitor.config import Config, ModelConfig, TimeWindowConfig
from driftwarden.monitor.events import EventDecoder, Kind, ModelSchema
from driftwarden.monitor.labels import JoinStore
from driftwarden.monitor.pipeline import ModelPipeline, Pipeline
from driftwarden.monitor.profile import Profile, fit, read_reference, reference_id
from driftwarden.monitor.storage import Store


def model_schema(model: ModelConfig) -> ModelSchema:
    """What the events of ``model`` must carry."""
    return ModelSchema(
        task=model.task,
        numeric=tuple(model.features.numeric),
        categorical=tuple(model.features.categorical),
        groups=tuple(model.groups),
    )


def decoder(config: Config, kind: Kind) -> EventDecoder:
    """The event decoder of ``kind`` for every configured model."""
    return EventDecoder(
        {name: model_schema(model) for name, model in config.models.items()},
        kind,
        max_message_bytes=config.events.max_message_bytes,
        unknown_models=config.events.unknown_models,
    )


def load_profile(name: str, model: ModelConfig, store: Store) -> tuple[Profile, bool]:
    """The model's profile: from the database if this reference was fitted before, else fitted.

    Returns the profile and whether it was fitted now.
    """
    frame, content = read_reference(model.reference)
    wanted = reference_id(content, model)
    stored = store.profile(wanted)
    if stored is not None:
        return Profile.from_bytes(stored), False
    profile = fit(name, model, frame, content)
    store.save_profile(profile.reference_id, name, str(model.reference), profile.to_bytes())
    return profile, True


def build_pipeline(
    config: Config,
    store: Store,
    *,
    resume: bool,
    clock: Callable[[], int] | None = None,
    labels: bool = True,
) -> Pipeline:
    """The pipeline of every configured model; ``resume`` restores stored window state.

    Without ``labels`` (a replay with no labels file) no prediction waits for a label.
    """
    models = {}
    join_store = JoinStore(store.engine.dialect.name) if labels else None
    for name, model in config.models.items():
        profile, _ = load_profile(name, model, store)
        state = store.model_state(name) if resume else None
        older: dict[str, Profile] = {}
        if state is not None and state.reference_id != profile.reference_id:
            previous = store.profile(state.reference_id)
            if previous is not None:
                older[state.reference_id] = Profile.from_bytes(previous)
        models[name] = ModelPipeline(name, model, profile, older, state, join_store)
    return Pipeline(config, models, clock=clock)


def window_sizes(config: Config) -> dict[str, timedelta]:
    """Each time-windowed model's window size (alerts judge result ages by it)."""
    return {
        name: model.window.size
        for name, model in config.models.items()
        if isinstance(model.window, TimeWindowConfig)
    }
