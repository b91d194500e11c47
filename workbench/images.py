"""Image inputs: the image files a prompt or QA item names, read and checked, and whether a
contender can take them.

A data file names images in its optional `images` field (a list; CSV: `|`-separated), each a
path relative to the data file or an http(s) URL the provider fetches itself. A file is read
once, here: its type comes from its content (Pillow), not its name, and must be one every
hosted API takes (PNG, JPEG, GIF, WebP); its pixel size feeds the token estimates
(`workbench.image_tokens`). A missing, unreadable or unsupported file is a ConfigError naming the
data file, the line and the image.

Whether a contender takes image input (`image_input_support`): the completion-style wire formats
never do (no image part exists in them); else declared by hand (`declared.image_input: true/false`
in the contenders file) wins; else the embedded models do not (llama-server serves their
text-only GGUF without a vision projector); else unknown — the request is sent and the server's
answer says. A prompt with images for a contender that cannot take them is
never sent: its record is an `unsupported_input` error (`unsupported_reason`).

A scenario may require modalities (`needs: [image_input]`): `check_needs` validates the list,
`needs_status` judges one contender from its integration facts (the `image_input` fact of
`workbench.measure.image_probe`) — a contender known not to take one fails, with the reason.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ConfigError
from workbench.types import ImageInput, Prompt

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = [
    "MIME_TYPES",
    "MODALITIES",
    "TEXT_ONLY_API_KINDS",
    "check_needs",
    "image_from_bytes",
    "image_input_support",
    "load_image",
    "needs_status",
    "resolve_images",
    "unsupported_reason",
]

#: Pillow's format name → the media type every hosted API accepts for it.
MIME_TYPES: dict[str, str] = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
#: The same by file extension, for URLs (not read here).
_URL_TYPES: dict[str, str] = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                              ".webp": "image/webp"}
#: Wire formats with no image part: prompt text only.
TEXT_ONLY_API_KINDS = frozenset({"openai-completions", "generic"})


def image_from_bytes(data: bytes, source: str) -> ImageInput:
    """An image from its bytes; ValueError saying why when it is not a supported image."""
    from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib; only loaded for images

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (width, height) = im.format or "", im.size
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable image ({exc})") from None
    mime = MIME_TYPES.get(fmt)
    if mime is None:
        raise ValueError(f"unsupported image type {fmt or '(unknown)'}; valid: {', '.join(MIME_TYPES)}")
    return ImageInput(mime_type=mime, width=width, height=height, data=data, source=source)


def load_image(path: Path, *, data_file: str, where: str) -> ImageInput:
    """One image file, read and checked; a ConfigError naming `data_file`, `where` and the image."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(data_file, where, f"no such image file {str(path)!r}") from None
    except OSError as exc:
        raise ConfigError(data_file, where, f"cannot read image {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return image_from_bytes(data, str(path))
    except ValueError as exc:
        raise ConfigError(data_file, where, f"{str(path)!r}: {exc}") from None


def resolve_images(names: Sequence[str], data_file: str | Path, where: str) -> tuple[ImageInput, ...]:
    """The images a data row names: paths relative to `data_file`'s folder, or http(s) URLs."""
    src = str(data_file)
    out = []
    for name in names:
        if name.startswith(("http://", "https://")):
            mime = _URL_TYPES.get(Path(name.split("?", 1)[0]).suffix.lower())
            if mime is None:
                raise ConfigError(src, where, f"{name!r}: an image URL must end in one of {', '.join(_URL_TYPES)}")
            out.append(ImageInput(mime_type=mime, url=name, source=name))
            continue
        path = Path(name)
        out.append(load_image(path if path.is_absolute() else Path(data_file).parent / path, data_file=src,
                              where=where))
    return tuple(out)


def image_input_support(contender: Contender) -> tuple[bool | None, str]:
    """(takes images: True, False or None for unknown, the source of that answer). A wire format
    with no image part cannot carry one whatever is declared: its images would be dropped."""
    if contender.api in TEXT_ONLY_API_KINDS:
        return False, f"wire format {contender.api} has no image part"
    declared = contender.declared.get("image_input")
    if isinstance(declared, bool):
        return declared, "declared in the contenders file (declared.image_input)"
    if contender.local is not None:
        return False, f"embedded model {contender.local}: text only (served without a vision projector)"
    return None, "not declared (declared.image_input) and not probed"


def unsupported_reason(contender: Contender, prompt: Prompt) -> str | None:
    """Why `prompt` cannot be sent to `contender` (it shows images to one that takes none), or None."""
    if not prompt.images:
        return None
    takes, why = image_input_support(contender)
    if takes is False:
        return f"prompt {prompt.id} carries {len(prompt.images)} image(s); {contender.name} takes no image input: {why}"
    return None


#: Modalities a scenario may need, each an integration fact of that name.
MODALITIES: tuple[str, ...] = ("image_input",)


def check_needs(needs: Sequence[str]) -> list[str]:
    """A scenario's `needs`, checked: a ValueError names an unknown modality and the valid ones."""
    for need in needs:
        if need not in MODALITIES:
            raise ValueError(f"unknown modality {need!r}; valid: {', '.join(MODALITIES)}")
    return list(dict.fromkeys(needs))


def needs_status(needs: Sequence[str], facts: Mapping[str, Mapping[str, Any]]) -> tuple[str, str]:
    """(`pass` | `fail` | `inconclusive`, why) for a contender whose integration facts are `facts`
    (`{name: {"value", "source", "detail"}}`): `fail` when any needed modality is known absent,
    `inconclusive` when one is unknown, else `pass` (the constraint statuses' vocabulary)."""
    missing, unknown = [], []
    for need in needs:
        fact = facts.get(need) or {}
        value, source, detail = fact.get("value"), fact.get("source", "unknown"), fact.get("detail", "")
        if value is False:
            missing.append(f"no {need} ({source}: {detail})" if detail else f"no {need} ({source})")
        elif value is not True:
            unknown.append(f"{need} unknown" + (f" ({detail})" if detail else ""))
    if missing:
        return "fail", "; ".join(missing)
    if unknown:
        return "inconclusive", "; ".join(unknown)
    return "pass", ", ".join(f"{n} ({(facts.get(n) or {}).get('source')})" for n in needs) or "nothing needed"
