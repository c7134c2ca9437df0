"""The chain spec: ffmpeg filter syntax for the stages a video goes through.

Grammar::

    chain   := stage ("," stage)*
    stage   := NAME ["=" option (":" option)*]
    option  := [KEY "="] value          (an option without KEY is positional)
    value   := item (("|" | "+") item)*

* ``detect=every=5,align=smooth=3,blend=segments=mouth+eyes`` - three stages with options;
  ``segments`` is the list ``mouth, eyes``; ``|`` and ``+`` both separate list items.
* An item of the form ``KEY=value`` after ``|`` or ``+`` starts a new option, so
  ``edit=age=2|smile=1`` is the same as ``edit=age=2:smile=1``.
* Positional options fill the stage's options in their declared order (``detect=5``), before
  any named one (as in ffmpeg).
* Special characters (``, : = | + ' \\``) are taken literally inside single quotes or after a
  backslash: ``edit=direction='my dirs/a:b.npy'``. Whitespace around names and items is ignored.
* ``copy`` is the empty chain: frames pass through unchanged.

``parse_chain`` only checks the syntax; ``build_stages`` resolves names through the stage
registry (built-in stages and plugins from the ``videoinv.plugins`` entry-point group) and
converts option values, with errors that list the valid names; it also gives the chain one
model and device (options marked ``shared``) and, for a chain over a video, checks that each
stage's input is made before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ChainError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_@-]*$")
SPECIAL = ",:=|+'\\"
LIST_SEPS = "|+"


@dataclass(frozen=True)
class Arg:
    """One option of a stage: ``key`` (None when positional), its list ``items`` and the
    separators between them (``seps[i]`` sits between ``items[i]`` and ``items[i+1]``)."""

    key: str | None
    items: tuple[str, ...]
    seps: tuple[str, ...] = ()
    lead: str = field(default=":", compare=False)  # the separator written before it (":", "|", "+")

    @property
    def text(self) -> str:
        """The value as one string (separators included), for scalar options."""
        out = self.items[0]
        for sep, item in zip(self.seps, self.items[1:]):
            out += sep + item
        return out

    def __str__(self) -> str:
        value = _escape(self.items[0])
        for sep, item in zip(self.seps, self.items[1:]):
            value += sep + _escape(item)
        return value if self.key is None else f"{self.key}={value}"


@dataclass(frozen=True)
class StageCall:
    """A stage named in a chain, with its options as written."""

    name: str
    args: tuple[Arg, ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return self.name
        text = self.name + "=" + str(self.args[0])
        for arg in self.args[1:]:
            text += (arg.lead if arg.key is not None else ":") + str(arg)
        return text


@dataclass(frozen=True)
class Chain:
    stages: tuple[StageCall, ...]

    def __str__(self) -> str:
        return ",".join(map(str, self.stages))


# -- parsing ----------------------------------------------------------------------------------
def _lex(text: str) -> list[tuple[str, bool]]:
    """Characters with a flag: True when the character is syntax (not quoted or escaped)."""
    out: list[tuple[str, bool]] = []
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "'":
                quoted = False
            else:
                out.append((c, False))
        elif c == "'":
            quoted = True
        elif c == "\\":
            if i + 1 == len(text):
                raise ChainError(f"chain {text!r} ends with a lone backslash; write \\\\ for a backslash")
            out.append((text[i + 1], False))
            i += 1
        else:
            out.append((c, True))
        i += 1
    if quoted:
        raise ChainError(f"chain {text!r} has an unterminated quote (')")
    return out


def _split(chars, seps: str) -> list[tuple[list, str]]:
    """Split at active separators; each part comes with the separator before it ('' first)."""
    parts: list[tuple[list, str]] = [([], "")]
    for c, active in chars:
        if active and c in seps:
            parts.append(([], c))
        else:
            parts[-1][0].append((c, active))
    return parts


def _strip(chars) -> str:
    lo, hi = 0, len(chars)
    while lo < hi and chars[lo][1] and chars[lo][0].isspace():
        lo += 1
    while hi > lo and chars[hi - 1][1] and chars[hi - 1][0].isspace():
        hi -= 1
    return "".join(c for c, _ in chars[lo:hi])


def _name(chars, what: str, spec: str) -> str:
    name = _strip(chars)
    if any(not active for c, active in chars) or not _NAME.match(name):
        raise ChainError(f"bad {what} name {name!r} in chain {spec!r}: use letters, digits, _, - and @")
    return name


def _find_eq(chars) -> int | None:
    return next((i for i, (c, active) in enumerate(chars) if active and c == "="), None)


def _parse_args(chars, spec: str) -> tuple[Arg, ...]:
    args: list[list] = []  # [key, items, seps, lead]
    for group, _ in _split(chars, ":"):
        for n, (piece, sep) in enumerate(_split(group, LIST_SEPS)):
            eq = _find_eq(piece)
            if eq is not None:
                value = piece[eq + 1:]
                if _find_eq(value) is not None:
                    raise ChainError(f"unexpected '=' in {_strip(piece)!r} in chain {spec!r}; "
                                     "separate options with ':' or escape it as \\=")
                args.append([_name(piece[:eq], "option", spec), [_strip(value)], [], sep or ":"])
            elif n == 0:
                args.append([None, [_strip(piece)], [], ":"])
            else:
                args[-1][1].append(_strip(piece))
                args[-1][2].append(sep)
    return tuple(Arg(k, tuple(items), tuple(seps), lead) for k, items, seps, lead in args)


def parse_chain(spec: str | Chain) -> Chain:
    """Parse a chain spec (syntax only). Raises :class:`ChainError` and nothing else."""
    if isinstance(spec, Chain):
        return spec
    if not isinstance(spec, str):
        raise ChainError(f"a chain spec must be text, not {type(spec).__name__}")
    if not spec.strip():
        raise ChainError("the chain is empty; use 'copy' to pass frames through unchanged")
    stages = []
    for n, (part, _) in enumerate(_split(_lex(spec), ","), 1):
        if not _strip(part) and all(active for _, active in part):
            raise ChainError(f"stage {n} of chain {spec!r} is empty (two commas, or a comma at an end)")
        eq = _find_eq(part)
        if eq is None:
            stages.append(StageCall(_name(part, "stage", spec)))
        else:
            stages.append(StageCall(_name(part[:eq], "stage", spec), _parse_args(part[eq + 1:], spec)))
    return Chain(tuple(stages))


def _escape(text: str) -> str:
    """Backslash-escape syntax characters, and whitespace at either end (which parsing strips)."""
    last = len(text) - 1
    return "".join("\\" + c if c in SPECIAL or (c.isspace() and i in (0, last)) else c
                   for i, c in enumerate(text))


def format_chain(chain: Chain) -> str:
    """The spec text of a chain; ``parse_chain(format_chain(c)) == c``."""
    return str(chain)


# -- resolution -------------------------------------------------------------------------------
def build_stages(spec: str | Chain, registry=None, from_frames: bool = False) -> list:
    """Parse ``spec`` and instantiate its stages from the registry (``copy`` gives none).

    Shared options (a model and its device) take one value for the whole chain: given on one
    stage (or fixed by one, as a latent cache fixes its model), the others take it; two
    different values are an error. ``from_frames``: the records come in as bare frames (a
    video), so every stage's input must be made by a stage before it (:func:`check_order`)."""
    from .registry import default_registry

    registry = registry or default_registry()
    chain = parse_chain(spec)
    classes = [registry.stage(call.name) for call in chain.stages]
    if from_frames:
        check_order(classes, registry)
    bound = []
    for cls, call in zip(classes, chain.stages):
        given: set = set()
        bound.append((cls, bind_options(cls, call, given), given))
    _share(bound)
    stages: list = []
    try:
        for cls, options, _ in bound:
            stages.append(cls(**options))
    except BaseException:  # a later stage's bad option: the ones built let go of their models and workers
        for stage in stages:
            stage.close()
        raise
    return [s for s in stages if not getattr(s, "identity", False)]


_WHAT = {"faces": "faces", "quads": "aligned faces", "latents": "W+ codes", "renders": "rendered faces"}
_EXAMPLE = "detect,align,invert,edit=smile=1,synthesize,blend"


def check_order(classes: list, registry) -> None:
    """Refuse a chain over bare frames where a stage needs what no stage before it makes
    (``synthesize`` without ``invert``), or changes what no stage after it uses (``edit``
    after ``synthesize``): such a stage would do nothing, without a word."""
    def stages_that(what: str, key: str, but=None) -> str:
        return " or ".join(n for n in registry.names("stage") if key in getattr(registry.stage(n), what) and n != but)

    made: set = set()
    for i, cls in enumerate(classes):
        for need in cls.needs:
            if need not in made:
                raise ChainError(f"{cls.name} needs {_WHAT.get(need, need)} from {stages_that('gives', need)} "
                                 f"before it in the chain (e.g. {_EXAMPLE})")
        for change in cls.changes:
            if not any(change in later.needs for later in classes[i + 1:]):
                raise ChainError(f"{cls.name} changes the {_WHAT.get(change, change)} but no stage after it uses "
                                 f"them: put it before {stages_that('needs', change, cls.name)} (e.g. {_EXAMPLE})")
        made.update(cls.gives)


def _share(bound: list) -> None:
    """One value per shared option across the chain (see build_stages)."""
    shared: dict = {}
    where: dict = {}
    for cls, options, given in bound:
        fixed = {p.name: options[p.name] for p in cls.params if p.shared and p.name in given}
        fixed.update(cls.chain_values(options))
        for name, value in fixed.items():
            if name in shared and shared[name] != value:
                raise ChainError(f"{where[name]} uses {name} {shared[name]} but {cls.name} {name} {value}: a chain "
                                 f"works with one {name}; give it once and the other stages take it")
            shared.setdefault(name, value)
            where.setdefault(name, cls.name)
    for cls, options, given in bound:
        for p in cls.params:
            if p.shared and p.name not in given and p.name in shared:
                options[p.name] = shared[p.name]
        cls.follow(options, given, shared)


def bind_options(cls, call: StageCall, given: set | None = None) -> dict:
    """Map a call's positional and keyed options onto ``cls.params``, converted and defaulted
    (``given`` collects the names of those given).

    Stages that set ``extra_keys`` receive unknown keys (e.g. edit direction names) as an
    ``extras`` dict of raw :class:`Arg` values."""
    params = {p.name: p for p in cls.params}
    order = [p.name for p in cls.params]
    values: dict = {}
    extras: dict = {}
    position = 0
    named = None  # the last option given by name
    for arg in call.args:
        if arg.key is None and named is not None:  # as in ffmpeg: positional options come first
            raise ChainError(f"stage {call.name}: {arg.text!r} follows {named}=... without a name; positional "
                             f"options come first, and a value that holds ':' is quoted (e.g. device='cuda:1')")
        if arg.key is None:
            if position >= len(order):
                raise ChainError(f"stage {call.name} takes at most {len(order)} positional option(s) "
                                 f"({', '.join(order) or 'none'}); got {arg.text!r} too many")
            key = order[position]
            position += 1
        else:
            key = named = arg.key
        if key in values or key in extras:
            raise ChainError(f"option {key} of stage {call.name} is given twice")
        if key in params:
            values[key] = params[key].convert(arg, call.name)
            if given is not None:
                given.add(key)
        elif getattr(cls, "extra_keys", False):
            extras[key] = arg
        else:
            valid = ", ".join(order) or "(none)"
            raise ChainError(f"stage {call.name} has no option {key!r}; valid options: {valid}")
    for name, p in params.items():
        values.setdefault(name, p.default)
    if getattr(cls, "extra_keys", False):
        values["extras"] = extras
    return values
