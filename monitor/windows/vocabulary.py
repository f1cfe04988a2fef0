"""Categories as codes: reference vocabularies (frequent categories and the rare rest)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Vocabulary:
    """The categories of one categorical column: the most frequent ones and the rare rest."""

    top: tuple[str, ...]
    rare: frozenset[str]

    def mapping(self, width: int) -> dict[str, int]:
        """Category → column in a ``CategoricalSummary`` of vocabulary width ``width``."""
        codes = {category: i for i, category in enumerate(self.top)}
        codes.update({category: width for category in self.rare})
        return codes


def category_texts(column: pl.Series) -> pl.Series:
    """A categorical column as text: booleans become ``"true"``/``"false"``."""
    if column.dtype == pl.Boolean():
        return column.cast(pl.String).str.to_lowercase()
    return column.cast(pl.String)


def category_codes(
    frame: pl.DataFrame, columns: list[str], maps: tuple[dict[str, int], ...], width: int
) -> np.ndarray:
    """Codes ``(F, n)`` of text ``columns`` in a ``CategoricalSummary`` of width ``width``.

    ``maps`` give each column's category → code; other categories get the unseen
    code, missing values -1.
    """
    if not columns:
        return np.zeros((0, frame.height), dtype=np.int64)
    unseen = width + 1
    codes = frame.select(
        pl.when(pl.col(column).is_null())
        .then(-1)
        .otherwise(pl.col(column).replace_strict(mapping, default=unseen, return_dtype=pl.Int64))
        .alias(column)
        for column, mapping in zip(columns, maps, strict=True)
    )
    return codes.to_numpy().T.astype(np.int64, copy=False)


def fit_vocabulary(text: pl.Series, max_categories: int) -> Vocabulary:
    """The ``max_categories`` most frequent categories (ties by name) and the rare rest."""
    counts = text.drop_nulls().value_counts(sort=True)
    names = counts[counts.columns[0]].to_list()
    frequencies = counts["count"].to_list()
    order = sorted(range(len(names)), key=lambda i: (-frequencies[i], names[i]))
    ranked = [names[i] for i in order]
    return Vocabulary(tuple(ranked[:max_categories]), frozenset(ranked[max_categories:]))


def vocabulary_json(vocabulary: Vocabulary | None) -> dict[str, list[str]] | None:
    if vocabulary is None:
        return None
    return {"top": list(vocabulary.top), "rare": sorted(vocabulary.rare)}


def vocabulary_from_json(data: dict[str, list[str]] | None) -> Vocabulary | None:
    if data is None:
        return None
    return Vocabulary(tuple(data["top"]), frozenset(data["rare"]))
