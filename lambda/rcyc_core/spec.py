"""What a model takes as input (the manifest's ``input``). Kept apart from ``preprocess`` so that reading a
manifest imports neither numpy nor Pillow."""

from __future__ import annotations

from dataclasses import dataclass

MAX_INPUT_SIDE = 4096  # pixels: far above any image classifier's input (224, 512), far below what exhausts memory


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: RGB images of width x height, scaled as ``scale`` says."""

    width: int
    height: int
    scale: str = "0..1"  # pixel / 255; the only scaling the Portland State models use

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "channels": 3, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        spec = cls(int(data["width"]), int(data["height"]), str(data.get("scale", "0..1")))
        if spec.scale != "0..1" or spec.width < 1 or spec.height < 1 or int(data.get("channels", 3)) != 3:
            raise ValueError(f"unsupported input spec {data!r}")
        if spec.width > MAX_INPUT_SIDE or spec.height > MAX_INPUT_SIDE:
            # Checked before anything is allocated: a 100000x100000 input would need 120 GB per image.
            raise ValueError(f"input {spec.width}x{spec.height} is larger than {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}")
        return spec
