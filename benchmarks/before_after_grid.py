"""A before/after picture: the same prompts and seeds drawn by two models, one row per prompt.

    python benchmarks/before_after_grid.py --before mini --after RUN/train/checkpoints/step-000300 \
        --out docs/images/before_after.png

Each row is one shapes-world evaluation prompt: `--images` samples of the first model, a gap, the same seeds
from the second. Images are upscaled (nearest) so the 64 px scenes stay readable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

# Shapes-world evaluation prompts (compositions no training stage saw), one per tag that GRPO moved most.
DEFAULT_PROMPTS = ("a photo of a ring and a cross", "a photo of four rings", "a photo of a cross below a ring",
                   "a photo of a blue circle and a purple cross")


def samples(model_name: str, prompts: list[str], images: int, seed: int) -> list[list[Image.Image]]:
    """`images` samples per prompt with the model's own sampler, image k of every row seeded `seed + k`."""
    from unirl_cli.models.loading import load_model

    model = load_model(model_name, device="cpu", dtype="float32")
    rows = []
    for prompt in prompts:
        rollout = model.generate_images([prompt] * images, seeds=[seed + k for k in range(images)])
        rows.append(model.decode_images(rollout.image_tokens))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="mini")
    parser.add_argument("--after", required=True)
    parser.add_argument("--prompts", nargs="+", default=list(DEFAULT_PROMPTS))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/images/before_after.png"))
    args = parser.parse_args()
    before, after = (samples(name, args.prompts, args.images, args.seed) for name in (args.before, args.after))
    side, gap, label = 64 * args.scale, 24, 18
    width = 2 * args.images * side + gap
    canvas = Image.new("RGB", (width, label + len(args.prompts) * (side + label)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), "before", fill="black")
    draw.text((args.images * side + gap + 4, 2), "after GRPO on its own answers", fill="black")
    for row, prompt in enumerate(args.prompts):
        top = label + row * (side + label)
        draw.text((4, top + 2), prompt, fill="black")
        for column, image in enumerate(before[row] + after[row]):
            left = column * side + (gap if column >= args.images else 0)
            canvas.paste(image.resize((side, side), Image.NEAREST), (left, top + label))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
