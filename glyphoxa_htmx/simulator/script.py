"""Scripted tabletop dialogue for the simulated worker (and the demo seed).

A :class:`DialogueScript` produces an endless, varied exchange between a small table of
players and the campaign's NPCs. Lines carry everything a worker writes to
``tenant_<id>.session_entries``: speaker id and name, ``npc_id`` (the NPC's id for NPC
lines, ``''`` for players), the text, an STT-ish ``raw_text`` and a duration. Now and then
a line mentions a place, item or faction, which yields knowledge-graph facts.

Muted NPCs never speak in the generated dialogue; players simply keep talking.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field

# --------------------------------------------------------------------------- cast


@dataclass(frozen=True)
class Npc:
    id: str
    name: str
    personality: str = ""


@dataclass(frozen=True)
class Player:
    id: str  # Discord user snowflake
    name: str  # Discord display name
    character: str


DEFAULT_NPCS = (
    Npc("sim-npc-grimble", "Grimble Ashfoot", "Gruff dwarven innkeeper of the Rusty Anchor who hears every rumour."),
    Npc("sim-npc-vey", "Sister Vey", "Soft-spoken temple archivist, keeper of forbidden maps."),
)

PLAYERS = (
    Player("204857310495821824", "mara", "Kestrel"),
    Player("318845021379133441", "jonas_b", "Brother Aldous"),
    Player("117209544113385472", "Ruth", "Pip Underbough"),
    Player("402981156822368256", "theo", "Vask the Red"),
)

PLACES = (
    "Hollowmere",
    "the Salt Road",
    "the Drowned Chapel",
    "Ironvale Pass",
    "the Rusty Anchor",
    "the Glass Market",
    "Widow's Lighthouse",
    "the Undercroft",
)
ITEMS = (
    "the Ember Key",
    "a brass astrolabe",
    "a ledger bound in eel-skin",
    "the Moonwell chalice",
    "a cracked signet ring",
    "the smuggler's map",
)
FACTIONS = ("the Lantern Guild", "the Grey Wardens", "the Tidecallers", "the Ashen Court")

_PLAYER_LINES = (
    "{npc}, have you seen anyone come through {place} tonight?",
    "I slide two silver across the bar. What do you know about {item}, {npc}?",
    "We're looking for a way into {place}. Any advice?",
    "Can I roll insight on {npc}? Something feels off.",
    "Okay, that's a nineteen on persuasion. {npc}, we're not here to cause trouble.",
    "Who's paying {faction} these days?",
    "I keep my hand on my sword. Tell us about {faction}, {npc}.",
    "Wait, didn't the merchant say {item} was stolen from {place}?",
    "{npc}, how much for a room and a hot meal?",
    "I pull out {item} and set it on the table. Recognise this?",
    "Do we trust {faction}? Last time they sold us out.",
    "I'm going to check the windows while they talk.",
    "Pip whispers: I could lift that key off the guard if you distract him.",
    "Let's not split the party again, please.",
    "Is there a back way out of {place}?",
    "{npc}, someone's been following us since {place}. Know anything about that?",
    "What's the fastest road to {place} from here?",
    "I want to ask about the fire at {place}. Who started it?",
    "Fine. We'll take the job. But half up front.",
    "Perception check... that's a twelve. Do I notice anything?",
)

_NPC_LINES = (
    "Keep your voice down. {faction} have ears in every tavern from here to {place}.",
    "Aye, I've heard of {item}. Heard that everyone who carried it ended up in the river, too.",
    "Two silver buys you a rumour, not the truth. The truth costs more.",
    "You're the third lot this week asking about {place}. The other two never came back.",
    "I don't deal with {faction}. Not since they burned my cousin's boat.",
    "A room's five copper. The stew's free if you stop asking questions.",
    "Look closer at that seal. That's the mark of {faction}, no doubt about it.",
    "If you mean to go to {place}, go at dawn. Nothing good walks that road at night.",
    "Hmph. That belongs in a vault, not on my table. Put {item} away.",
    "The old records say {place} was sealed for a reason. I helped write some of them.",
    "There's a man in a grey cloak who's been waiting by the door since you arrived.",
    "You want my advice? Leave {item} where you found it and forget you ever saw it.",
    "The Wardens came asking about you. I told them nothing. This time.",
    "Follow the Salt Road east, then take the second bridge. Don't take the first.",
    "I knew your mentor, you know. She'd have laughed at the lot of you.",
    "Careful. {faction} pay well, but they collect their debts in blood.",
    "The fire? Started in the cellar. Someone wanted the ledgers gone.",
    "Half up front, half when you bring back proof. That's how it's done.",
)

_STT_SWAPS = (
    (re.compile(r"\bgoing to\b"), "gonna"),
    (re.compile(r"\bwant to\b"), "wanna"),
    (re.compile(r"\bdon't know\b"), "dunno"),
    (re.compile(r"\bokay\b"), "ok"),
    (re.compile(r"\bnineteen\b"), "19"),
    (re.compile(r"\btwelve\b"), "12"),
)
_PUNCT = re.compile(r"[^\w\s']")


def stt_text(text: str, rng: random.Random | None = None) -> str:
    """A raw speech-to-text rendering of ``text``: lowercase, no punctuation, a few
    spoken contractions and the odd dropped filler."""
    raw = _PUNCT.sub("", text.lower())
    for pattern, repl in _STT_SWAPS:
        raw = pattern.sub(repl, raw)
    words = raw.split()
    if rng is not None and len(words) > 6 and rng.random() < 0.3:
        words.insert(rng.randrange(1, len(words)), rng.choice(("uh", "um", "like")))
    return " ".join(words)


_TITLES = {"sister", "brother", "lord", "lady", "captain", "master", "mother", "father", "sir", "dame", "old", "the"}


def short_name(name: str) -> str:
    """How players address an NPC: "Grimble" for "Grimble Ashfoot", but "Sister Vey" stays."""
    words = name.split()
    if len(words) > 1 and words[0].lower() not in _TITLES:
        return words[0]
    return name


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class Line:
    speaker_id: str
    speaker_name: str
    npc_id: str
    text: str
    raw_text: str
    duration_ns: int

    @property
    def is_npc(self) -> bool:
        return bool(self.npc_id)


@dataclass(frozen=True)
class Entity:
    id: str
    type: str
    name: str
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Fact:
    """source -rel_type-> target, with a confidence for the provenance."""

    source: Entity
    target: Entity
    rel_type: str
    confidence: float


def npc_entity(npc: Npc) -> Entity:
    return Entity(f"npc-{slug(npc.name)}", "npc", npc.name, {"npc_id": npc.id, "description": npc.personality})


def _thing_entity(kind: str, name: str) -> Entity:
    clean = name[4:] if name.lower().startswith("the ") else name
    clean = clean[2:] if clean.lower().startswith("a ") else clean
    return Entity(f"{kind}-{slug(clean)}", kind, clean[:1].upper() + clean[1:], {})


class DialogueScript:
    """Endless scripted dialogue. Not thread-safe: one per session runtime."""

    def __init__(self, npcs: list[Npc] | tuple[Npc, ...], *, seed: object = None, players=PLAYERS) -> None:
        self.npcs = list(npcs) or list(DEFAULT_NPCS)
        self.players = list(players)
        self.rng = random.Random(str(seed) if seed is not None else None)
        self._turn = 0
        self._addressed: Npc | None = None
        self._pending_facts: list[Fact] = []
        self._recent: deque[str] = deque(maxlen=8)

    def _pick(self, templates: tuple[str, ...]) -> str:
        """A template not used in the last few lines."""
        for _ in range(6):
            choice = self.rng.choice(templates)
            if choice not in self._recent:
                break
        self._recent.append(choice)
        return choice

    def _duration(self, text: str) -> int:
        seconds = 0.4 + len(text.split()) * self.rng.uniform(0.3, 0.42)
        return int(seconds * 1e9)

    def _fill(self, template: str, npc: Npc, speaker_entity: Entity | None) -> str:
        place, item, faction = self.rng.choice(PLACES), self.rng.choice(ITEMS), self.rng.choice(FACTIONS)
        text = template.format(npc=short_name(npc.name), place=place, item=item, faction=faction)
        text = text[:1].upper() + text[1:]
        subject = speaker_entity or npc_entity(npc)
        if "{place}" in template:
            self._pending_facts.append(Fact(subject, _thing_entity("location", place), "knows_about", 0.6))
        if "{item}" in template:
            self._pending_facts.append(Fact(subject, _thing_entity("item", item), "knows_about", 0.7))
        if "{faction}" in template:
            rel = "distrusts" if any(w in template for w in ("don't", "trust", "debts")) else "knows_about"
            self._pending_facts.append(Fact(subject, _thing_entity("faction", faction), rel, 0.55))
        return text

    def player_line(self, muted: set[str] | frozenset[str] = frozenset()) -> Line:
        player = self.rng.choice(self.players)
        speaking = [n for n in self.npcs if n.name not in muted]
        self._addressed = self.rng.choice(speaking) if speaking else self.rng.choice(self.npcs)
        pc = Entity(f"pc-{slug(player.character)}", "pc", player.character, {"player": player.name})
        text = self._fill(self._pick(_PLAYER_LINES), self._addressed, pc)
        return Line(player.id, player.name, "", text, stt_text(text, self.rng), self._duration(text))

    def npc_line(self, npc: Npc, text: str | None = None) -> Line:
        if text is None:
            text = self._fill(self._pick(_NPC_LINES), npc, npc_entity(npc))
        return Line(npc.id, npc.name, npc.id, text, stt_text(text), self._duration(text))

    def next_line(self, muted: set[str] | frozenset[str] = frozenset()) -> Line:
        """The next generated line. An addressed NPC answers unless muted."""
        self._turn += 1
        npc = self._addressed
        if npc is not None and npc.name not in muted and self.rng.random() < 0.85:
            self._addressed = None
            return self.npc_line(npc)
        return self.player_line(muted)

    def take_facts(self) -> list[Fact]:
        """Knowledge-graph facts mentioned since the last call (deduplicated)."""
        facts, self._pending_facts = self._pending_facts, []
        seen: set[tuple[str, str, str]] = set()
        unique = []
        for f in facts:
            key = (f.source.id, f.target.id, f.rel_type)
            if key not in seen and f.source.id != f.target.id:
                seen.add(key)
                unique.append(f)
        return unique

    def find_npc(self, name: str) -> Npc | None:
        for npc in self.npcs:
            if npc.name == name:
                return npc
        lowered = name.strip().lower()
        for npc in self.npcs:
            if npc.name.lower() == lowered:
                return npc
        return None
