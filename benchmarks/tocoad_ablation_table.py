"""Print the ablation table (markdown) from benchmarks/tocoad_ablation.sh output folders.

    python benchmarks/tocoad_ablation_table.py OUT_DIR/magnetic_tile_dev OUT_DIR/hazelnut ...
"""
import json
import re
import sys
from pathlib import Path


def row(folder: Path, stages: str) -> str:
    d = folder / stages
    m = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else {}
    cpu = (d / "cputime.txt").read_text() if (d / "cputime.txt").is_file() else ""
    t = dict(re.findall(r"(user|sys|wall) ([0-9.]+)", cpu))
    cpu_s = float(t.get("user", "nan")) + float(t.get("sys", "nan"))
    log = (d / "run" / "train.log").read_text() if (d / "run" / "train.log").is_file() else ""
    dpx = re.findall(r"held-out synthetic pixel AUROC ([0-9.]+)", log)

    def f(key: str) -> str:
        v = m.get(key)
        return "—" if v is None else f"{100 * v:.2f}"

    return (f"| {folder.name} | {stages} | {f('image_auroc')} | {f('pixel_auroc')} | {f('aupro')} | "
            f"{float(t.get('wall', 'nan')) / 60:.1f} | {cpu_s / 60:.1f} | {dpx[-1] if dpx else ''} |")


print("| data | stages | image AUROC | pixel AUROC | AUPRO | train wall (min, shared) | train CPU (min) "
      "| D held-out px AUROC |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for arg in sys.argv[1:]:
    for st in ("baseline", "no-guide", "full"):
        print(row(Path(arg), st))
