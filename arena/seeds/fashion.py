"""``selectstar_fashion``: the fashion-shopping tool-use dialogs of seed 000.

Three narrative transcripts (v0.41, v0.43 1 epoch, v0.43 3 epochs: the model's turns are the reference
except where a ``GT)``/``GT:`` line corrects them) and the two SelectStar dialogs of the v0.56/v0.58 dumps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arena.seeds.common import DialogBuilder, Seed, function_tool
from arena.seeds.narrative import build_turns, paragraphs, units
from arena.seeds.selectstar import selectstar_dialogs

EVAL_SET = "selectstar_fashion"
TEXT_TOOL = "retrieve_fashion_text_knowledges_with_text_query"
IMAGE_TOOL = "retrieve_fashion_images_with_text_query"

# The seed shows only the names and the one string argument; descriptions are glosses of the names.
FASHION_TOOLS = [
    function_tool(
        TEXT_TOOL,
        "Retrieve fashion knowledge documents (title, text) matching a text query.",
        {"text_query": {"type": "string", "description": "What to look up, e.g. a garment or brand"}},
        ["text_query"],
    ),
    function_tool(
        IMAGE_TOOL,
        "Retrieve fashion images (image_url, image_tag) matching a text query.",
        {"text_query": {"type": "string", "description": "The item to show, e.g. colour, length, fit and garment"}},
        ["text_query"],
    ),
]

# Hard-wrapped lines whose wrap fell on a space (all others fell mid-word): seed 000 line numbers.
SPACED_WRAPS = {183, 215, 233, 234, 243, 296, 297, 298, 356, 453}


@dataclass(frozen=True)
class Transcript:
    """A narrative test transcript: where it starts and ends, and which model produced its answers."""

    id: str
    start: str  # regex of the heading that opens it
    end: str  # regex of the heading after it
    model: str


TRANSCRIPTS = (
    Transcript(
        "fashion-v041-crocs-zipup",
        r"^### Dialog 3 - Select Star Fashion aug",
        r"^## Llama-8B-Instruct-v0\.43 1 epoch",
        "Llama-8B-Instruct-tool_selection-v0.41",
    ),
    Transcript(
        "fashion-v043-1ep-coat", r"^## Llama-8B-Instruct-v0\.43 1 epoch", r"^## 3 epochs", "Llama-8B-Instruct-v0.43-1ep"
    ),
    Transcript(
        "fashion-v043-3ep-coat",
        r"^## 3 epochs",
        r"^## Tool calling 및 대화 능력 테스트",
        "Llama-70B-Instruct-v0.43-3ep",
    ),
)


def transcript_dialog(seed: Seed, spec: Transcript) -> dict[str, Any]:
    """One narrative transcript as a dialog."""
    start = seed.find(spec.start)
    end = seed.find(spec.end, start + 1) - 1
    found = units(paragraphs(seed, start + 1, end))
    b = DialogBuilder(spec.id, EVAL_SET, "tool_use", seed.name, found[0].first, tools=FASHION_TOOLS)
    build_turns(b, found, spec.model, [t["function"]["name"] for t in FASHION_TOOLS], SPACED_WRAPS)
    b.meta["gt_source"] = f"{spec.model} transcript; GT lines replace the model's answer where it differed"
    return b.build()


def convert(seed: Seed) -> list[dict[str, Any]]:
    """All ``selectstar_fashion`` dialogs of seed 000, in seed order."""
    return [transcript_dialog(seed, spec) for spec in TRANSCRIPTS] + selectstar_dialogs(seed, FASHION_TOOLS)
