"""plots: render every plot of dvc.yaml as an image into one folder (the render_plots stage)."""

from seqnlp import report
from seqnlp.artifacts import staged_directory
from seqnlp.errors import UserError


def run(directory, image_format="svg"):
    if directory.exists():
        others = [path.name for path in directory.iterdir() if path.suffix not in (".svg", ".png")]
        if others:
            raise UserError(f"{directory} holds other files than plot images ({', '.join(sorted(others)[:3])}); "
                            "name a folder of its own")
    with staged_directory(directory) as scratch:
        images = report.render_plots(scratch, image_format=image_format)
    print(f"wrote {len(images)} plot image(s) under {directory}")
