"""Markdown table of the candidates measured by benchmarks/recall_candidates.sh, grouped by data set.

    python benchmarks/recall_candidates_table.py OUT_ROOT [--reference baseline]

Reads OUT_ROOT/<set>/<candidate>/{eval.json,time.txt}. The last two columns are the differences (points) in
image AUROC and in recall at FPR <= 5 % against the reference candidate of the same set, the issue's two gates.
"""
import argparse
import json
import re
from pathlib import Path


def load(folder: Path) -> dict | None:
    path = folder / "eval.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    rec = m["line"]["overall"]["recall_at_fpr"]
    times = folder / "time.txt"
    t = dict(re.findall(r"(user|sys|wall) ([0-9.]+)", times.read_text())) if times.is_file() else {}
    return {"image": m["image_auroc"], "pixel": m.get("pixel_auroc"), "aupro": m.get("aupro"),
            "r1": rec["0.01"]["recall"], "r5": rec["0.05"]["recall"], "r10": rec["0.1"]["recall"],
            "wall": float(t["wall"]) if "wall" in t else None, "json": str(path.resolve())}


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--reference", default="baseline", help="candidate the differences are taken against")
    args = ap.parse_args()
    print("| set | candidate | image AUROC | pixel AUROC | AUPRO | recall@1 % | recall@5 % | recall@10 % "
          "| train wall s | Δ image (pt) | Δ recall@5 (pt) | eval JSON |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for set_dir in sorted(p for p in args.root.iterdir() if p.is_dir()):
        rows = {c.name: r for c in sorted(set_dir.iterdir()) if c.is_dir() and (r := load(c)) is not None}
        ref = rows.get(args.reference)
        for name, r in rows.items():
            d_img = f"{100 * (r['image'] - ref['image']):+.1f}" if ref else "—"
            d_r5 = f"{100 * (r['r5'] - ref['r5']):+.1f}" if ref else "—"
            wall = "—" if r["wall"] is None else f"{r['wall']:.0f}"
            print(f"| {set_dir.name} | {name} | {pct(r['image'])} | {pct(r['pixel'])} | {pct(r['aupro'])} "
                  f"| {pct(r['r1'])} | {pct(r['r5'])} | {pct(r['r10'])} | {wall} | {d_img} | {d_r5} | {r['json']} |")


if __name__ == "__main__":
    main()
