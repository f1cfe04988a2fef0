"""``driftwarden dead-letters list|show|replay``: inspect dead letters and feed corrected ones back.

``replay`` produces each message again to the Kafka topic it came from — the
stored bytes as they are (after fixing the configuration, say), or corrected
events from a file — and marks the originals as replayed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from driftwarden.core.times import format_optional, format_time, from_ms
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.errors import InputError
from driftwarden.monitor.ingest.kafka import DeadLetterReplayer


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``dead-letters`` and its actions (the ``driftwarden`` parser gives ``--config``
    its default, ``$DRIFTWARDEN_CONFIG``, and requires one of the two)."""
    parser = commands.add_parser("dead-letters", help="inspect and replay dead letters")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="newest dead letters, one per line")
    listing.add_argument("--config", type=Path)
    listing.add_argument("--reason")
    listing.add_argument("--model")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="JSON lines with the raw bytes")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one dead letter in full")
    show.add_argument("--config", type=Path)
    show.add_argument("id", type=int)
    show.set_defaults(handler=_show)

    replay = actions.add_parser("replay", help="produce dead letters (or corrections) again")
    replay.add_argument("--config", type=Path)
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--id", type=int, nargs="+", dest="ids", help="replay these as stored")
    source.add_argument(
        "--file",
        type=Path,
        help='corrections: JSON lines {"dead_letter_id": N, "event": {...}}',
    )
    replay.set_defaults(handler=_replay)


def _store(path: Path) -> tuple[configuration.Config, storage.Store]:
    loaded = configuration.load(path)
    engine = storage.create(loaded.storage.url)
    storage.require_current(engine, f"driftwarden db upgrade --config {path}")
    return loaded, storage.Store(engine)


def _list(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    letters = store.dead_letters(reason=args.reason, model=args.model, limit=args.limit)
    out = sys.stdout
    for stored in letters:
        letter = stored.letter
        if args.json:
            out.write(orjson.dumps({"id": stored.id, **letter.to_json()}).decode() + "\n")
            continue
        origin = letter.origin
        where = f"{origin.source}[{origin.partition}]@{origin.offset}"
        replayed = " (replayed)" if stored.replayed_at else ""
        out.write(
            f"{stored.id:>8}  {from_ms(stored.created_at):%Y-%m-%d %H:%M:%S}  {letter.reason:<18} "
            f"{where}  {letter.detail}{replayed}\n"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    _, store = _store(args.config)
    found = store.dead_letters(ids=[args.id])
    if not found:
        raise InputError(f"no dead letter with id {args.id}")
    stored = found[0]
    letter = stored.letter
    print(f"id:        {stored.id}")
    print(f"kind:      {letter.kind}")
    print(f"reason:    {letter.reason}")
    print(f"detail:    {letter.detail}")
    print(f"model:     {letter.model or '-'}")
    origin = letter.origin
    print(f"origin:    {origin.source} partition {origin.partition} offset {origin.offset}")
    print(f"kept at:   {format_time(stored.created_at)}")
    print(f"replayed:  {format_optional(stored.replayed_at) or 'no'}")
    print("raw:")
    print(letter.raw.decode("utf-8", errors="backslashreplace"))
    return 0


def _replay(args: argparse.Namespace) -> int:
    loaded, store = _store(args.config)
    if args.ids:
        found = {stored.id for stored in store.dead_letters(ids=args.ids)}
        missing = sorted(set(args.ids) - found)
        if missing:
            raise InputError(f"no dead letter with id {', '.join(map(str, missing))}")
        sends: list[tuple[int, bytes | None]] = [(i, None) for i in args.ids]
    else:
        sends = list(_corrections(args.file, store).items())
    replayer = DeadLetterReplayer(loaded.kafka, store)
    try:
        for identifier, corrected in sends:
            replayer.replay(identifier, corrected)
    except LookupError as exc:
        raise InputError(str(exc.args[0])) from None
    finally:
        replayer.close()
    print(f"replayed {len(sends)} dead letter(s)")
    return 0


def _corrections(path: Path, store: storage.Store) -> dict[int, bytes]:
    """Corrected events by dead-letter id, from JSON lines ``{"dead_letter_id", "event"}``."""
    corrections: dict[int, bytes] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
            corrections[int(entry["dead_letter_id"])] = orjson.dumps(entry["event"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise InputError(
                f'{path}:{number}: expected {{"dead_letter_id": N, "event": {{...}}}}'
            ) from None
    found = {stored.id for stored in store.dead_letters(ids=list(corrections))}
    missing = sorted(set(corrections) - found)
    if missing:
        raise InputError(f"{path}: no dead letter with id {', '.join(map(str, missing))}")
    return corrections
